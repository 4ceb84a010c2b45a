"""The public surface of papy.util matches the contract's signatures."""

import inspect
import subprocess
import sys

import papy.util
import pytest
from papy.util import codefile, config, func, runtime, script

# name -> the contract's signature (PaPy 1.x API reference), Python 3 form.
CONTRACT = {
    config.get_defaults: "()",
    config.start_logger: (
        "(log_to_file=False, log_to_stream=False, log_to_file_level=20, "
        "log_to_stream_level=20, log_filename=None, log_stream=None, "
        "log_rotate=True, log_size=524288, log_number=3)"
    ),
    func.dump_item: (
        "(inbox, type='file', prefix=None, suffix=None, dir=None, timeout=320, "
        "buffer=None)"
    ),
    func.dump_pickle_stream: "(inbox, handle)",
    func.dump_stream: "(inbox, handle, delimiter=None)",
    func.ipasser: "(inbox, i=0)",
    func.json_dumps: "(inbox)",
    func.json_loads: "(inbox)",
    func.load_pickle_stream: "(handle)",
    func.load_stream: "(handle, delimiter=None)",
    func.make_lines: "(handle, follow=False, wait=0.1)",
    func.njoiner: "(inbox, n=None, join='')",
    func.npasser: "(inbox, n=None)",
    func.nzipper: "(inbox, n=None)",
    func.pickle_dumps: "(inbox)",
    func.pickle_loads: "(inbox)",
    func.plugger: "(inbox)",
    func.print_: "(inbox)",
    func.sjoiner: "(inbox, s=None, join='')",
    func.spasser: "(inbox, s=None)",
    func.szipper: "(inbox, s=None)",
    script.get_config: "(lang='python')",
    script.script: "(inbox, cfg)",
    script.write_template: "(fn, lang='python')",
    runtime.get_runtime: "()",
}


def _plain_signature(function, keyword_only=True):
    """The signature without annotations; keyword_only=False leaves out the
    keyword-only arguments we add beyond the contract (their own tests
    below pin them)."""
    signature = inspect.signature(function)
    empty = inspect.Parameter.empty
    parameters = [
        p.replace(annotation=empty)
        for p in signature.parameters.values()
        if keyword_only or p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    return str(signature.replace(parameters=parameters, return_annotation=empty))


@pytest.mark.timeout(10)
@pytest.mark.parametrize("function", list(CONTRACT), ids=lambda f: f.__qualname__)
def test_signature_matches_the_contract(function):
    assert _plain_signature(function, keyword_only=False) == CONTRACT[function]


@pytest.mark.timeout(10)
def test_start_logger_adds_only_the_keyword_name_of_its_argument_list():
    assert _plain_signature(config.start_logger).endswith(
        "log_number=3, *, log_to_screen_level=None)"
    )


@pytest.mark.timeout(10)
def test_load_item_adds_only_a_keyword_timeout():
    assert _plain_signature(func.load_item) == (
        "(inbox, type='string', remove=True, buffer=None, *, timeout=320)"
    )


@pytest.mark.timeout(10)
def test_modules_export_what_they_document():
    assert set(papy.util.__all__) == {"codefile", "config", "func", "runtime", "script"}
    for module in (codefile, config, func, runtime, script):
        for name in module.__all__:
            assert getattr(module, name).__doc__ or not callable(getattr(module, name))
    assert not hasattr(papy, "__file__") or papy.__file__ is None  # namespace


@pytest.mark.timeout(30)
def test_importing_papy_util_func_does_not_import_structlog():
    code = (
        "import sys, papy.util, papy.util.func; "
        "print('structlog' in sys.modules, 'papy.util.config' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.timeout(10)
def test_config_exports_the_stream_protocol_of_start_logger():
    assert "TextSink" in config.__all__
    namespace = {}
    exec("from papy.util.config import *", namespace)
    assert namespace["TextSink"] is config.TextSink
    hints = inspect.signature(config.start_logger, eval_str=True).parameters
    assert hints["log_stream"].annotation == config.TextSink | None
    assert hints["log_to_stream"].annotation == bool | config.TextSink
