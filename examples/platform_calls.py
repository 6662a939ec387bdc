"""A task calling platform functions from east-py-std (console output, SHA-256).

Platform functions are declared with `East.platform(name, inputs, output)`;
e3 finds the package that provides them (here east-py-std) and passes it to
the runner (`east-py run -p east-py-std …`). Output written with
`console_log` lands in the task's stdout log (`e3 logs`).
"""

from east import East, NullType, StringType

import e3

console_log = East.platform("console_log", [StringType], NullType)
sha256 = East.platform("crypto_hash_sha256", [StringType], StringType)

text = e3.input("text", StringType, default="east")


def _fingerprint(b, s):
    digest = b.let(sha256(s))
    b.do(console_log(East.value("fingerprint of ", StringType).concat(s)))
    return digest


fingerprint = e3.task("fingerprint", [text], East.function([StringType], StringType, _fingerprint))

pkg = e3.package("platform", "1.0.0", fingerprint)
