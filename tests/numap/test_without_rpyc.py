"""rpyc is an extra (papy-numap[remote]): a local map works without it, and
asking for remote workers without it says what to install."""

import pytest
from python_runs import run_python

# Run in a fresh interpreter where `import rpyc` fails, as when the extra
# was not installed.
LOCAL_MAP_WITHOUT_RPYC = """
import sys
sys.modules["rpyc"] = None
from numap import NuMap

with NuMap(lambda x: x + 1, range(5), worker_num=2) as results:
    assert list(results) == [1, 2, 3, 4, 5]
try:
    NuMap(worker_remote=[("127.0.0.1", 1)])
except ImportError as error:
    print(error)
"""


@pytest.mark.timeout(60)
def test_a_local_map_runs_without_rpyc_and_remote_workers_name_the_extra():
    done = run_python(LOCAL_MAP_WITHOUT_RPYC, timeout=50)
    assert done.returncode == 0, done.stderr
    assert "worker_remote" in done.stdout
    assert "pip install rpyc" in done.stdout
    assert "'remote' extra" in done.stdout


@pytest.mark.timeout(60)
def test_importing_numap_and_running_a_map_does_not_import_rpyc():
    code = (
        "import sys\n"
        "from numap import NuMap\n"
        "with NuMap(abs, [-1, 2], worker_num=1) as results:\n"
        "    assert list(results) == [1, 2]\n"
        "print('rpyc' in sys.modules)\n"
    )
    done = run_python(code, timeout=50)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
