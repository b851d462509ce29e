"""The one exception type for bad or missing input (data, configuration, command line), and readable
config-validation messages."""

from pydantic import ValidationError


class DataError(ValueError):
    """Input data is missing, corrupt or malformed.

    The message always names the file (or dataset), the row/column/key and the offending value,
    so the user can fix the input without reading the code.
    """


SHOWN_VALUE_CHARACTERS = 60  # a quoted value longer than this is cut: the message names the field, not the document


def describe_validation_error(error: ValidationError) -> str:
    """The problems joined on one line: each one's dotted key path, what is wrong and, unless the field is
    missing, the value that was given (cut to a readable length)."""
    return "; ".join(
        f"{'.'.join(map(str, issue['loc'])) or '(top level)'}: {issue['msg']}"
        + ("" if issue["type"] == "missing" else f" (got {shown_value(issue.get('input'))})")
        for issue in error.errors()
    )


def shown_value(value: object) -> str:
    """A value as an error message quotes it: its repr, cut after `SHOWN_VALUE_CHARACTERS` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARACTERS else f"{text[:SHOWN_VALUE_CHARACTERS - 3]}..."
