"""Property tests: random pipelines equal a sequential evaluation.

Random linear and branched topologies with random valid consume, produce,
spawn and repeat settings run on linear Pipers, thread NuMaps and process
NuMaps; every output stream must equal, item for item, what the plain
sequential evaluator in core_reference computes from the DESIGN.md rules.
"""

import math
import threading

import pytest
from core_functions import mix
from core_reference import normalize, piper_outputs
from hypothesis import example as known_example
from hypothesis import given, settings
from hypothesis import strategies as st
from numap import NuMap
from papy.core import Dagger, DaggerError, Piper, Plumber, Worker

# Shapes: name -> (number of pipers, pipes, groups of pipers whose outputs
# must carry the same number of items per input item).
SHAPES = {
    "single": (1, [], []),
    "chain": (3, [(0, 1, 2)], []),
    "diamond": (4, [(0, 1, 3), (0, 2, 3)], [(1, 2)]),
    "join": (3, [(0, 2), (1, 2)], [(0, 1)]),
    "fanout": (3, [(0, 1), (0, 2)], []),
    "long": (5, [(0, 1, 2, 3, 4)], []),
}


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def pipelines(draw, modes):
    """A shape, per-piper settings that satisfy the alignment rule, a mode
    per piper (linear, or a key of a NuMap), and input data."""
    shape = draw(st.sampled_from(sorted(SHAPES)))
    count, pipes, same = SHAPES[shape]
    upstream = {i: [] for i in range(count)}
    for pipe in pipes:
        for up, down in zip(pipe, pipe[1:], strict=False):
            upstream[down].append(up)
    out_size = {i: draw(st.sampled_from([1, 2, 4])) for i in range(count)}
    for group in same:
        for member in group[1:]:
            out_size[member] = out_size[group[0]]
    # Pipers fed by one upstream piper all take that piper's output size;
    # input pipers share one input size so their streams stay aligned.
    data_size = draw(st.sampled_from([1, 2]))
    specs = []
    for i in range(count):
        in_size = out_size[upstream[i][0]] if upstream[i] else data_size
        spawn = draw(st.sampled_from(divisors(math.gcd(in_size, out_size[i]))))
        produce = out_size[i] // spawn
        specs.append(
            {
                "consume": in_size // spawn,
                "produce": produce,
                "spawn": spawn,
                "repeat": produce > 1 and draw(st.booleans()),
                "salt": draw(st.integers(0, 50)),
                "mode": draw(st.sampled_from(modes)),
            }
        )
    inputs = [i for i in range(count) if not upstream[i]]
    data = draw(st.lists(st.integers(0, 99), max_size=30))
    return count, pipes, specs, inputs, data


def build(count, pipes, specs, numaps):
    pipers = []
    for i, spec in enumerate(specs):
        worker = Worker(
            mix, (spec["salt"],), {"produce": spec["produce"], "repeat": spec["repeat"]}
        )
        mode = spec["mode"]
        pipers.append(
            Piper(
                worker,
                parallel=False if mode == "linear" else numaps[mode],
                consume=spec["consume"],
                produce=spec["produce"],
                spawn=spec["spawn"],
                repeat=spec["repeat"],
                name=f"p{i}",
                branch=i,
            )
        )
    dagger = Plumber(pipers=pipers, pipes=[tuple(pipers[i] for i in p) for p in pipes])
    return dagger, pipers


def reference(dagger, pipers, specs, datas):
    """Outputs of every output piper, evaluated sequentially."""
    outputs = {}
    data_of = dict(zip(dagger.get_inputs(), datas, strict=True))
    for piper in dagger.postorder():
        spec = specs[pipers.index(piper)]
        upstream = dagger.get_upstream(piper)
        inputs = [outputs[u] for u in upstream] if upstream else [data_of[piper]]

        def function(inbox, spec=spec):
            return mix(inbox, spec["salt"], spec["produce"], spec["repeat"])

        outputs[piper] = piper_outputs(
            function, inputs, piper.stride, piper.consume, piper.produce, piper.repeat
        )
    return [outputs[p] for p in dagger.get_outputs()]


def run(dagger, datas):
    """Every output's items; outputs are read concurrently, as a Plumber
    does (they may emit different numbers of items per input item)."""
    outputs = dagger.get_outputs()
    Dagger.connect(dagger, datas)
    Dagger.start(dagger)
    results = [[] for _ in outputs]

    def read(i):
        results[i].extend(normalize(x) for x in outputs[i])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(outputs))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results
    finally:
        Dagger.stop(dagger)
        dagger.disconnect()


def numaps_feed_each_other(pipes, specs):
    """True if NuMap X reads NuMap Y and Y reads X (through linear pipers)."""
    upstream = {}
    for pipe in pipes:
        for up, down in zip(pipe, pipe[1:], strict=False):
            upstream.setdefault(down, []).append(up)

    def feeding_modes(piper):
        modes = set()
        for up in upstream.get(piper, []):
            mode = specs[up]["mode"]
            modes |= feeding_modes(up) if mode == "linear" else {mode}
        return modes

    reads = set()
    for piper, spec in enumerate(specs):
        if spec["mode"] != "linear":
            reads |= {(spec["mode"], m) for m in feeding_modes(piper)}
    return any((b, a) in reads for a, b in reads if a != b)


def groups_mix_items(dagger):
    """True if a consume>1 Piper groups, or a join zips, a stream laid out
    by a produce>1 Piper of another stride (DESIGN.md: produce and consume
    undo each other only with the same stride; 1:1 Pipers keep the layout)."""
    laid_out_with = {}
    for piper in dagger.postorder():
        strides = {laid_out_with[u] for u in dagger.get_upstream(piper)} - {None}
        if len(strides) > 1:
            return True
        stride = strides.pop() if strides else None
        if piper.consume > 1 and stride is not None and stride != piper.stride:
            return True
        if piper.produce > 1:
            laid_out_with[piper] = piper.stride
        else:
            laid_out_with[piper] = None if piper.consume > 1 else stride
    return False


def check(example, numaps):
    count, pipes, specs, inputs, data = example
    dagger, pipers = build(count, pipes, specs, numaps)
    datas = [data] * len(inputs)
    if numaps_feed_each_other(pipes, specs):
        with pytest.raises(DaggerError, match="NuMaps feed each other"):
            dagger.connect(datas)
        assert all(piper.state == "new" for piper in pipers)
        return
    if groups_mix_items(dagger):
        with pytest.raises(DaggerError, match="stride"):
            dagger.connect(datas)
        assert all(piper.state == "new" for piper in pipers)
        return
    expected = reference(dagger, pipers, specs, datas)
    assert run(dagger, [list(d) for d in datas]) == expected


@pytest.mark.timeout(90)
@given(example=pipelines(["linear"]))
def test_linear_pipelines_match_sequential_evaluation(example):
    check(example, {})


# Hung before 'lent' buffer slots were freed by a feeder short of space: a
# Piper with spawn=4 feeds one with consume=4 on the same NuMap, and batches
# of 2 lend one slot per task. (The producer was on the "shared" NuMap, of
# another stride than the consumer's: refused now, as its groups mix items,
# so it is on the consumer's NuMap.)
LENT_SLOTS_EXAMPLE = (
    3,
    [(0, 1, 2)],
    [
        {
            "consume": 1,
            "produce": 4,
            "spawn": 1,
            "repeat": False,
            "salt": 0,
            "mode": "own",
        },
        {
            "consume": 1,
            "produce": 1,
            "spawn": 4,
            "repeat": False,
            "salt": 18,
            "mode": "own",
        },
        {
            "consume": 4,
            "produce": 1,
            "spawn": 1,
            "repeat": False,
            "salt": 17,
            "mode": "own",
        },
    ],
    [0],
    [66, 45, 29, 39, 57, 19, 57, 23],
)


@pytest.mark.timeout(120)
@given(
    example=pipelines(["linear", "shared", "own"]),
    stride=st.integers(1, 3),
)
@known_example(example=LENT_SLOTS_EXAMPLE, stride=3)
def test_thread_numap_pipelines_match_sequential_evaluation(example, stride):
    numaps = {
        "shared": NuMap(worker_type="thread", worker_num=2, stride=stride),
        "own": NuMap(worker_type="thread", worker_num=3, stride=stride + 1),
    }
    check(example, numaps)


@pytest.mark.timeout(120)
@settings(max_examples=5)
@given(example=pipelines(["shared"]), stride=st.integers(1, 3))
def test_process_numap_pipelines_match_sequential_evaluation(example, stride):
    numaps = {"shared": NuMap(worker_type="process", worker_num=2, stride=stride)}
    check(example, numaps)


@pytest.mark.timeout(60)
@given(
    produce=st.integers(1, 3),
    consume=st.integers(1, 3),
    spawn_up=st.integers(1, 2),
    spawn_down=st.integers(1, 2),
)
def test_mismatched_settings_are_refused_at_connect(
    produce, consume, spawn_up, spawn_down
):
    up = Piper(Worker(mix, (1,)), produce=produce, spawn=spawn_up, name="up")
    down = Piper(Worker(mix, (2,)), consume=consume, spawn=spawn_down, name="down")
    dagger = Dagger(pipes=[(up, down)])
    if produce * spawn_up == consume * spawn_down:
        dagger.connect([range(4)])
        dagger.disconnect()
    else:
        with pytest.raises(DaggerError, match="'up' -> 'down'"):
            dagger.connect([range(4)])
        assert up.state == "new" and down.state == "new"
