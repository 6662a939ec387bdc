"""A custom shell task: copy a Beast2 input file to the output with `cp`.

Custom tasks run a command with `bash -c`. The command reads its inputs from the
files e3 stages (Beast2) and must write its output file as Beast2. Paths in a
string template are inserted single-quoted, so they are safe to use as-is.
"""

from east import ArrayType, East, IntegerType, StringType

import e3

message = e3.input("message", StringType, default="hello from a shell task")
copy = e3.custom_task("copy", [message], StringType, "cp {inputs[0]} {output}")

# The same command as an East function (input_paths, output_path) -> command string,
# for commands that need computing:
count = e3.input("count", IntegerType, default=3)
copy_count = e3.custom_task(
    "copy_count",
    [count],
    IntegerType,
    East.function(
        [ArrayType(StringType), StringType],
        StringType,
        lambda b, ins, out: (
            East.value("cat ", StringType).concat(ins.get(0)).concat(" > ").concat(out)
        ),
    ),
)

pkg = e3.package("shell", "1.0.0", copy, copy_count)
