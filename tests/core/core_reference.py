"""A plain, sequential evaluator of PaPy pipelines, written from DESIGN.md.

Lists in, lists out, no iterators and no papy.core code: the tests compare
what Pipers, Daggers and Plumbers produce against this. Errors are the
string ERR (an error in, or raised by a function, gives ERR for that slot).
"""

import math

ERR = "ERR"


def normalize(item):
    """A pipeline output item with every PiperError replaced by ERR."""
    from papy.core import PiperError

    return ERR if isinstance(item, PiperError) else item


def has_error(inbox):
    for entry in inbox:
        if entry == ERR:
            return True
        if isinstance(entry, tuple) and ERR in entry:
            return True
    return False


def piper_outputs(function, inputs, s=1, consume=1, produce=1, repeat=False):
    """Outputs of one Piper reading the lists ``inputs`` (one per upstream)."""
    rows = list(zip(*inputs, strict=False))
    if consume == 1:
        inboxes = rows
    else:
        inboxes = []
        for start in range(0, len(rows), consume * s):
            block = rows[start : start + consume * s]
            width = s if len(block) == consume * s else math.ceil(len(block) / consume)
            strides = [block[i : i + width] for i in range(0, len(block), width)]
            for i in range(width):
                column = [stride[i] for stride in strides if i < len(stride)]
                entries = (tuple(row[j] for row in column) for j in range(len(inputs)))
                inboxes.append(tuple(entries))
    results = []
    for inbox in inboxes:
        if has_error(inbox):
            results.append(ERR)
            continue
        try:
            results.append(function(inbox))
        except Exception:
            results.append(ERR)
    if produce == 1:
        return results
    outputs = []
    for start in range(0, len(results), s):
        block = results[start : start + s]
        expanded = []
        for result in block:
            if result == ERR or repeat:
                expanded.append([result] * produce)
            elif isinstance(result, tuple | list) and len(result) == produce:
                expanded.append(list(result))
            else:
                expanded.append([ERR] * produce)
        for j in range(produce):
            outputs.extend(items[j] for items in expanded)
    return outputs
