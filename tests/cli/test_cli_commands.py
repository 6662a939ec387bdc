"""The CLI end to end (in-process, plus the real console script for a few commands)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from e3.codec import beast2
from e3.codec.types import IntegerType
from e3.store.repository import create_repository
from tests_support import E3_BIN, run_cli, run_e3


@pytest.fixture
def hello_repo(tmp_path: Path, build_example) -> Path:
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    assert run_cli("package", "import", repo, build_example("hello")).code == 0
    assert run_cli("workspace", "deploy", repo, "ws", "hello").code == 0
    return repo


def test_repo_create_status_remove(tmp_path: Path) -> None:
    repo = tmp_path / "new" / "repo"
    r = run_cli("repo", "create", repo)
    assert r.code == 0 and f"Initialized e3 repository at {repo}" in r.out
    again = run_cli("repo", "create", repo)
    assert again.code == 4 and again.err_lines == [f"Error: e3 repository already exists at {repo}"]
    st = run_cli("repo", "status", repo)
    assert "Packages:\n  (none)" in st.out
    run_cli("workspace", "create", repo, "w1")
    refused = run_cli("repo", "remove", repo)
    assert refused.code == 4 and "--recursive" in refused.err
    ok = run_cli("repo", "remove", repo, "-r")
    assert ok.code == 0 and "Removed workspace: w1" in ok.out
    assert not repo.exists()


def test_not_a_repository(tmp_path: Path) -> None:
    r = run_cli("package", "list", tmp_path)
    assert r.code == 3
    assert r.err_lines[0].startswith("Error: e3 repository not found")


def test_package_commands_text_and_json(hello_repo: Path, tmp_path: Path) -> None:
    ls = run_cli("package", "list", hello_repo)
    assert ls.out == "Packages:\n  hello@1.0.0\n"
    js = run_cli("package", "list", hello_repo, "--json")
    assert json.loads(js.out)[0]["name"] == "hello"
    out = tmp_path / "out.zip"
    ex = run_cli("package", "export", hello_repo, "hello", out)
    assert ex.code == 0 and f"Exported hello@1.0.0 to {out}" in ex.out
    rm = run_cli("package", "remove", hello_repo, "hello@1.0.0")
    assert rm.code == 0 and "Removed hello@1.0.0" in rm.out
    assert run_cli("package", "list", hello_repo).out == "No packages installed\n"
    missing = run_cli("package", "remove", hello_repo, "hello")
    assert missing.code == 3 and missing.err_lines == ["Error: package hello not found"]


def test_workspace_commands(hello_repo: Path, tmp_path: Path) -> None:
    assert run_cli("workspace", "create", hello_repo, "w2").code == 0
    ls = run_cli("workspace", "list", hello_repo)
    assert ls.out == "Workspaces:\n  w2 (not deployed)\n  ws (hello@1.0.0)\n"
    js = json.loads(run_cli("workspace", "list", hello_repo, "--json").out)
    assert [w["deployed"] for w in js] == [False, True]
    out = tmp_path / "ws.zip"
    ex = run_cli("workspace", "export", hello_repo, "ws", out, "--version", "2.0.0")
    assert ex.code == 0 and "as hello@2.0.0" in ex.out
    im = run_cli("workspace", "import", hello_repo, "w3", out)
    assert im.code == 0 and "Deployed to workspace: w3" in im.out
    assert run_cli("workspace", "remove", hello_repo, "w2").code == 0
    bad = run_cli("workspace", "create", hello_repo, "a.b")
    assert bad.code == 5 and bad.err_lines[0].startswith("Error: invalid workspace name 'a.b'")


def test_get_set_status_list(hello_repo: Path, tmp_path: Path) -> None:
    assert run_cli("get", hello_repo, "ws.inputs.x").out == "10\n"
    for name, content in [("v.east", "21"), ("v.json", '"22"')]:
        f = tmp_path / name
        f.write_text(content)
        r = run_cli("set", hello_repo, "ws.inputs.x", f)
        assert r.code == 0 and r.out == f"Set ws.inputs.x from {f}\n"
    f = tmp_path / "v.beast2"
    f.write_bytes(beast2.encode(23, IntegerType))
    assert run_cli("set", hello_repo, "ws.inputs.x", f, "--type", ".Integer").code == 0
    assert run_cli("get", hello_repo, "ws.inputs.x", "-f", "json").out == '"23"\n'
    raw = run_cli("get", hello_repo, "ws.inputs.x", "-f", "beast2")
    assert beast2.decode(raw.raw, IntegerType) == 23
    st = run_cli("status", hello_repo, "ws.inputs.x")
    assert "Type:     .Integer" in st.out and "Status:   set" in st.out
    ls = run_cli("list", hello_repo, "ws", "-r")
    assert ls.out == ".inputs.x\n.tasks.double\n"
    top = run_cli("list", hello_repo)
    assert top.out == "ws  (hello@1.0.0)\n"
    lsl = run_cli("list", hello_repo, "ws.inputs", "-l")
    assert lsl.out.splitlines()[0].split() == ["NAME", "TYPE", "STATUS", "SIZE"]
    assert lsl.out.splitlines()[1].split()[:3] == ["x", ".Integer", "set"]
    unset = run_cli("get", hello_repo, "ws.tasks.double")
    assert unset.code == 3 and "unassigned" in unset.err


def test_set_refuses_wrong_type_and_task_outputs(hello_repo: Path, tmp_path: Path) -> None:
    f = tmp_path / "s.east"
    f.write_text('"text"')
    r = run_cli("set", hello_repo, "ws.inputs.x", f)
    assert r.code == 5 and len(r.err_lines) == 1 and ".Integer" in r.err
    r2 = run_cli("set", hello_repo, "ws.inputs.x", f, "--type", ".String")
    assert r2.code == 5
    assert r2.err_lines == [
        "Error: type mismatch for ws.inputs.x: the dataset is .Integer but --type is .String"
    ]
    f.write_text("5")
    r3 = run_cli("set", hello_repo, "ws.tasks.double", f)
    assert r3.code == 6 and "not writable" in r3.err


def test_e3_repo_fills_a_missing_argument_and_never_overrides_one(
    hello_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other, _ = create_repository(tmp_path / "other")
    monkeypatch.setenv("E3_REPO", str(other.root))
    # An explicit argument wins (the reference listed E3_REPO's repository instead).
    assert run_cli("get", hello_repo, "ws.inputs.x").out == "10\n"
    listed = run_cli("list", other.root)
    assert listed.code == 0 and "ws" not in listed.out
    monkeypatch.setenv("E3_REPO", str(hello_repo))
    assert run_cli("get", "ws.inputs.x").out == "10\n"  # left out: E3_REPO fills it in
    missing = run_cli("get", tmp_path / "not-a-repo", "ws.inputs.x")
    assert missing.code == 3 and "not-a-repo" in missing.err


def test_gc_output(hello_repo: Path) -> None:
    r = run_cli("repo", "gc", hello_repo, "--dry-run", "--min-age", "0")
    assert r.code == 0 and "Dry run - no files will be deleted" in r.out
    assert "Minimum age: 0ms" in r.out
    js = json.loads(run_cli("repo", "gc", hello_repo, "--min-age", "5m", "--json").out)
    assert js["skipped_young"] >= 0 and js["dry_run"] is False
    bad = run_cli("repo", "gc", hello_repo, "--min-age", "soon")
    assert bad.code == 2


def test_convert(tmp_path: Path) -> None:
    src = tmp_path / "v.east"
    src.write_text('(a=1, b=["x"])')
    t = '.Struct [(name="a", type=.Integer), (name="b", type=.Array .String)]'
    js = run_cli("convert", src, "--type", t, "--to", "json")
    assert json.loads(js.out) == {"a": "1", "b": ["x"]}
    b2 = tmp_path / "v.beast2"
    assert run_cli("convert", src, "--type", t, "-o", b2).code == 0
    back = run_cli("convert", b2)
    assert back.out == '(a=1, b=["x"])\n'
    assert run_cli("convert", b2, "--to", "type").out == t + "\n"
    inferred = run_cli("convert", src, "--to", "type")  # the literal decides its type
    assert inferred.code == 0 and inferred.out == t + "\n"
    src.write_text("(a=1, b=[])")
    notype = run_cli("convert", src)
    assert notype.code == 2 and "give its type with --type" in notype.err
    js = tmp_path / "v.json"
    js.write_text('{"a": "1", "b": []}')
    untyped_json = run_cli("convert", js)
    assert untyped_json.code == 2 and "needs a type" in untyped_json.err


def test_console_script_and_stdin_beast2(tmp_path: Path) -> None:
    data = beast2.encode(42, IntegerType)
    r = run_e3("convert", "--to", "json", input=data)
    assert r.code == 0 and r.out == '"42"\n'
    bad = run_e3("convert", input=b"\x89East\r\n\x05garbage")
    assert bad.code == 5 and len(bad.err_lines) == 1 and bad.err.startswith("Error: ")
    assert run_e3("--version").out.startswith("e3 ")
    help_ = run_e3("--help")
    assert help_.code == 0 and "E3_REPO" in help_.out


def test_package_build_command(tmp_path: Path) -> None:
    from tests_support import EXAMPLES

    out = tmp_path / "d.zip"
    r = run_cli("package", "build", EXAMPLES / "diamond.py", "-o", out)
    assert r.code == 0 and "Built diamond@1.0.0" in r.out and out.exists()


_INTERRUPT_WHILE_IMPORTING = """
import sys

class CtrlC:  # a Ctrl-C that lands while the CLI imports its modules
    def find_spec(self, name, path=None, target=None):
        if name == "e3.cli.context":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = ["e3", "repo", "status", "nowhere"]
from e3.launcher import entry
entry()
"""


def test_ctrl_c_while_the_cli_is_still_importing_is_a_clean_interrupt() -> None:
    """Found by the scenario fuzzer: a Ctrl-C in the CLI's first ~50 ms printed a
    KeyboardInterrupt traceback from the standard library; the console script now
    enters through e3.launcher, which imports nothing heavy before its handler."""
    proc = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_WHILE_IMPORTING], capture_output=True, text=True
    )
    assert proc.returncode == 130
    assert proc.stderr == "Interrupted.\n"


_INTERRUPT_IN_SET_NAME = """
import sys

class CtrlC:
    def __set_name__(self, owner, name):
        raise KeyboardInterrupt

class Finder:  # a Ctrl-C that lands while a module the command loads defines a class
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            class Record:
                field = CtrlC()  # Python 3.11 raises RuntimeError from the KeyboardInterrupt
        return None

sys.meta_path.insert(0, Finder())
sys.argv = ["e3", "repo", "status", "nowhere"]
from e3.launcher import entry
entry()
"""


@pytest.mark.parametrize(
    "module",
    [
        "e3.cli.repo",  # loaded while main() builds its parser: escapes main()
        "e3.api.local",  # loaded by the command's handler: caught by main()
    ],
)
def test_ctrl_c_that_python_turns_into_a_runtime_error_is_still_an_interrupt(
    module: str,
) -> None:
    """Found by the interrupt sweep (python -m fuzz interrupts): SIGINT while a dataclass
    field was being created ended `e3 start` with "Internal error: RuntimeError: Error
    calling __set_name__ …" and exit 70; escaping main() it was a traceback and exit 1."""
    proc = subprocess.run(
        [sys.executable, "-c", f"MODULE = {module!r}\n{_INTERRUPT_IN_SET_NAME}"],
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stderr) == (130, "Interrupted.\n")


def test_console_script_enters_through_the_launcher() -> None:
    assert "from e3.launcher import entry" in E3_BIN.read_text()


def _fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter (importing e3.launcher installs a SIGINT handler,
    so it never happens in the test process); returns its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_console_script_loads_nothing_but_e3_and_its_launcher_before_its_handler() -> None:
    """Issue 20: e3/__init__ imported typing (5-10 ms with no handler in place), and a
    Ctrl-C there printed a traceback through e3's code. Whatever is imported here runs
    before e3 can handle an interrupt, so it must be nothing."""
    new = _fresh_python(
        "import sys; before = set(sys.modules)\n"
        "import e3.launcher\n"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    assert new.split() == ["e3", "e3.launcher"]


def test_lazy_names_of_the_package_load_on_first_use() -> None:
    out = _fresh_python(
        "import sys, e3\n"
        "assert 'e3.sdk' not in sys.modules\n"
        "from e3.sdk import task\n"
        "assert e3.task is task and 'task' in dir(e3) and 'task' in e3.__all__\n"
        "try:\n"
        "    e3.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    assert out == "module 'e3' has no attribute 'no_such_name'\n"


def test_the_launcher_exits_with_e3s_interrupted_code() -> None:
    out = _fresh_python("import e3.launcher, e3.errors\nprint(e3.launcher.EXIT_INTERRUPTED)")
    from e3.errors import EXIT_INTERRUPTED

    assert int(out) == EXIT_INTERRUPTED == 130


def test_the_console_script_collects_cycles_less_often_than_python_s_default() -> None:
    """An e3 command's start-up objects live to its end: at Python's default threshold (700)
    the collector walked them 629 times in a cached 10,000-task start (a ninth of it)."""
    out = _fresh_python(
        "import gc, e3.cli\n"
        "e3.cli.main = lambda: print(gc.get_threshold()[0], gc.isenabled()) or 0\n"
        "from e3.launcher import entry\n"
        "entry()"
    )
    assert out.split() == ["100000", "True"]


def test_a_ctrl_c_that_e3_was_started_to_ignore_stays_ignored() -> None:
    """`trap '' INT` (as nohup and background jobs do): the launcher's handler must not
    replace the inherited SIG_IGN, or a stray SIGINT would end a command meant to be immune."""
    proc = subprocess.run(
        [
            "sh",
            "-c",
            f"trap '' INT; exec '{sys.executable}' -c \"$0\"",
            "import signal, e3.launcher; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True\n"


def test_e3_get_loads_no_run_machinery_nor_other_operations_results(hello_repo: Path) -> None:
    """Issue 18: a frozen dataclass costs about a millisecond to define, and `e3 get` had
    loaded 43 of them (57 ms, against 120-180 ms for east-py itself), among them run
    records, events and the results of every other operation."""
    out = _fresh_python(
        "import sys\n"
        "from e3.cli import main\n"
        f"assert main(['get', {str(hello_repo)!r}, 'ws.inputs.x']) == 0\n"
        "unwanted = ['e3.model.results', 'e3.model.runs', 'e3.model.events',\n"
        "            'e3.records.dataflow', 'e3.codec.csv_io', 'asyncio']\n"
        "print(' '.join(m for m in unwanted if m in sys.modules))\n"
    )
    assert out.splitlines()[-1] == ""
