"""The kinds of test target and validation fold a split offers: plain names, importable without the split's
own dependencies (torch, pandas), so that command lines list them as choices and answer `--help` at once."""

TARGET_KINDS: tuple[str, ...] = ("first", "last", "successive", "all")
VALIDATION_KINDS: tuple[str, ...] = ("by_time", "by_user", "last_train_item")
