"""The one exception type for bad or missing input (data, configuration, command line), and readable
config-validation messages."""

from pydantic import ValidationError


class DataError(ValueError):
    """Input data is missing, corrupt or malformed.

    The message always names the file (or dataset), the row/column/key and the offending value,
    so the user can fix the input without reading the code.
    """


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: the dotted key path, what is wrong, and the value that was given."""
    return "; ".join(
        f"{'.'.join(map(str, issue['loc'])) or '(top level)'}: {issue['msg']} (got {issue.get('input')!r})"
        for issue in error.errors()
    )
