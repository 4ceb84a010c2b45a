"""Worker: a left-to-right composition of functions that never raises."""

from __future__ import annotations

import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from papy.core._errors import WorkerError


def _function_name(function: Callable[..., Any]) -> str:
    return getattr(function, "__qualname__", None) or repr(function)


def ctrl_c_can_arrive() -> bool:
    """True where Python raises KeyboardInterrupt for a Ctrl-C: on the main
    thread, with a Python SIGINT handler installed. Elsewhere (another
    thread; a numap worker process, which ignores SIGINT) a
    KeyboardInterrupt can only be one a function raised itself."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    return on_main_thread and callable(signal.getsignal(signal.SIGINT))


def find_error(inbox: Any) -> BaseException | None:
    """Return the exception in ``inbox`` to pass on, or None.

    An inbox is a tuple with one entry per upstream Piper; with ``consume > 1``
    each entry is itself a tuple of items, so errors can sit one level down.
    An error whose class sets ``passed_on_first`` (one that a downstream
    Piper must raise: papy.core's debug raises) wins over the others, so
    that a join does not swap it for an ordinary error of another branch;
    otherwise the first error wins. Called for every item: one pass, and
    nothing built (an entry is not wrapped in a tuple to share the loop).
    """
    if isinstance(inbox, BaseException):
        return inbox
    if not isinstance(inbox, tuple | list):
        return None
    first = None
    for entry in inbox:
        if isinstance(entry, BaseException):
            if getattr(entry, "passed_on_first", False):
                return entry
            if first is None:
                first = entry
        elif isinstance(entry, tuple | list):
            for item in entry:
                if isinstance(item, BaseException):
                    if getattr(item, "passed_on_first", False):
                        return item
                    if first is None:
                        first = item
    return first


class Worker:
    """Composes functions; calling it evaluates them from left to right.

    Every function takes an inbox first (then its own positional and keyword
    arguments), as in PaPy 1.x and as every ``papy.util.func`` function does.
    The first function gets the Worker's inbox (a tuple with one item per
    upstream Piper); each further function gets a 1-tuple holding the
    previous function's result, so it reads that result as ``inbox[0]``.
    The last function's result is returned as it is (not in a tuple). So
    ``Worker((pickle_dumps, pickle_loads))`` returns a copy of ``inbox[0]``.

    Construction forms:
      - ``Worker((f1, f2), ((a11, a12), ()), ({}, {"k": v}))``: functions with
        one argument tuple and one keyword dict per function (both optional);
      - ``Worker(worker)``: a functional copy of another Worker;
      - ``Worker((worker1, worker2))``: the functions and arguments of several
        Workers joined in order (plain functions may be mixed in; they take
        their arguments from the same position of ``arguments``/``kwargs``);
      - ``Worker(function, (arg1, arg2))``: one function with its arguments
        (``kwargs`` may then be a single dict).

    Arguments:
      - functions: a callable, a Worker, or a sequence of callables/Workers.
      - arguments [default: None]: per-function tuples of positional arguments.
      - kwargs [default: None]: per-function dicts of keyword arguments.
      - name [default: None]: a label; defaults to the function names joined
        by ``_``.

    Raises ``WorkerError`` for arguments that do not fit the functions.

    Calling does not raise what a function raises: an exception (also a
    SystemExit or GeneratorExit) is returned as a ``WorkerError`` holding the
    original exception and its traceback text. A KeyboardInterrupt is too,
    except where a real Ctrl-C can arrive (the main thread of a process that
    does not ignore SIGINT): there it is raised, to stop the program. If
    the inbox contains an exception, no function runs and the exception is
    returned wrapped in a ``WorkerError`` (with several, the one
    ``find_error`` picks).
    """

    task: tuple[Callable[..., Any], ...]
    args: tuple[tuple[Any, ...], ...]
    kwargs: tuple[dict[str, Any], ...]

    def __init__(
        self,
        functions: Callable[..., Any] | Worker | Sequence[Callable[..., Any] | Worker],
        arguments: Sequence[Any] | None = None,
        kwargs: Sequence[dict[str, Any]] | dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(functions, Worker):
            self._set(functions.task, functions.args, functions.kwargs)
        elif callable(functions):
            self._init_single(functions, arguments, kwargs)
        elif isinstance(functions, Sequence) and not isinstance(functions, str):
            self._init_sequence(functions, arguments, kwargs)
        else:
            raise WorkerError(
                f"Worker: 'functions' must be a callable, a Worker or a sequence "
                f"of them, got {type(functions).__name__}"
            )
        self.name = name or "_".join(_function_name(f) for f in self.task)

    def _set(self, task: Sequence[Any], args: Sequence[Any], kwargs: Sequence[Any]):
        self.task = tuple(task)
        self.args = tuple(tuple(a) for a in args)
        self.kwargs = tuple(dict(k) for k in kwargs)

    def _init_single(self, function, arguments, kwargs) -> None:
        if arguments is not None and not isinstance(arguments, tuple | list):
            raise WorkerError(
                f"Worker: 'arguments' of {_function_name(function)!r} must be a "
                f"tuple of its positional arguments after the inbox, got "
                f"{arguments!r}; e.g. Worker(function, ({arguments!r},))"
            )
        args = () if arguments is None else tuple(arguments)
        if kwargs is None:
            kw: dict[str, Any] = {}
        elif isinstance(kwargs, dict):
            kw = kwargs
        elif (
            isinstance(kwargs, tuple | list)
            and len(kwargs) == 1
            and isinstance(kwargs[0], dict)
        ):
            kw = kwargs[0]
        else:
            raise WorkerError(
                "Worker: with a single function 'kwargs' must be a dict "
                f"(or a 1-tuple holding one), got {kwargs!r}"
            )
        self._set((function,), (args,), (kw,))

    def _init_sequence(self, functions, arguments, kwargs) -> None:
        count = len(functions)
        arguments = self._per_function("arguments", arguments, count, ())
        kwargs = self._per_function("kwargs", kwargs, count, {})
        task: list[Any] = []
        args: list[Any] = []
        kws: list[Any] = []
        for function, arg, kw in zip(functions, arguments, kwargs, strict=True):
            if isinstance(function, Worker):
                if arg or kw:
                    raise WorkerError(
                        f"Worker: got arguments {arg!r} / {kw!r} for Worker "
                        f"{function.name!r}; a Worker carries its own arguments"
                    )
                task.extend(function.task)
                args.extend(function.args)
                kws.extend(function.kwargs)
            elif callable(function):
                if not isinstance(arg, tuple | list) or not isinstance(kw, dict):
                    raise WorkerError(
                        f"Worker: arguments of {_function_name(function)!r} must be "
                        f"a tuple and a dict, got {arg!r} and {kw!r}"
                    )
                task.append(function)
                args.append(arg)
                kws.append(kw)
            else:
                raise WorkerError(f"Worker: {function!r} is not callable")
        if not task:
            raise WorkerError("Worker: 'functions' is empty; give at least one")
        self._set(task, args, kws)

    @staticmethod
    def _per_function(label: str, given: Any, count: int, empty: Any) -> list[Any]:
        if given is None:
            return [type(empty)() for _ in range(count)]
        if not isinstance(given, tuple | list):
            kind = "tuple of arguments" if label == "arguments" else "dict"
            raise WorkerError(
                f"Worker: '{label}' must be a sequence with one {kind} per "
                f"function ({count}), got {given!r}"
            )
        if len(given) != count:
            raise WorkerError(
                f"Worker: '{label}' has {len(given)} entries for {count} functions; "
                "give one per function (empty ones as () or {})"
            )
        return list(given)

    def __call__(self, inbox: Any) -> Any:
        error = find_error(inbox)
        if error is not None:
            return WorkerError(
                f"Worker {self.name!r} got an error in its inbox: {error!r}", error
            )
        step_inbox = inbox
        result: Any = None
        steps = zip(self.task, self.args, self.kwargs, strict=True)
        for function, args, kwargs in steps:
            try:
                result = function(step_inbox, *args, **kwargs)
            except (Exception, SystemExit, GeneratorExit) as exc:
                # sys.exit() in one item's function is that item's error: it
                # must not end the pipeline (or the worker process running
                # it). A GeneratorExit that leaves a function is always the
                # function's own: Python throws it only into a generator
                # paused at a yield, never into the call running here.
                return self._item_error(function, exc)
            except KeyboardInterrupt as exc:
                # A real Ctrl-C stops everything; where none can arrive,
                # the function raised it, and it is that item's error.
                if ctrl_c_can_arrive():
                    raise
                return self._item_error(function, exc)
            # PaPy 1.x's convention: the next function's inbox holds the
            # result as its one item, as if it came from one upstream Piper.
            step_inbox = (result,)
        return result

    def _item_error(self, function: Callable[..., Any], exc: BaseException) -> Any:
        """The WorkerError for ``exc``, raised by ``function`` (call it in
        the ``except`` block: it keeps the traceback being handled)."""
        name = _function_name(function)
        return WorkerError(
            f"Worker {self.name!r}: function {name!r} raised {exc!r}",
            exc,
            traceback.format_exc(),
            name,
        )

    def __repr__(self) -> str:
        return f"Worker({self.name!r})"
