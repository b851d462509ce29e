"""The one exception type for bad or missing input data."""


class DataError(ValueError):
    """Input data is missing, corrupt or malformed.

    The message always names the file (or dataset), the row/column/key and the offending value,
    so the user can fix the input without reading the code.
    """
