"""The `ls` listings of the CLI (rootfs ls, rootfs layers, packages ls): a table for people,
or --json for programs, from one column list."""

import json


def show(items, columns, as_json, record=lambda item: item._asdict()):
    """Print items as JSON records or as a table. columns: (HEADER, width, value of an item);
    a negative width right-aligns (two spaces follow), None is the last, unpadded column."""
    if as_json:
        print(json.dumps([record(item) for item in items], indent=1))
        return 0
    print(_row([header for header, _, _ in columns], columns))
    for item in items:
        print(_row([str(value(item)) for _, _, value in columns], columns))
    return 0


def _row(values, columns):
    cells = []
    for text, (_, width, _) in zip(values, columns):
        cells.append(text if width is None else f"{text:>{-width}}  " if width < 0 else f"{text:{width}}")
    return "".join(cells)
