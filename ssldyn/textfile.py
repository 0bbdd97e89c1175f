"""Reading the text files a user hands the toolkit (CSVs, config.json, metrics.jsonl, eval records), so that a
binary or corrupt one is one line naming it, not a UnicodeDecodeError with no file name."""
import io
from pathlib import Path


def read_text(path) -> str:
    """The UTF-8 text of `path`, newlines as stored; ValueError naming the file when it is not text."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file (byte {err.start} of {len(data)} is not UTF-8): it is binary or "
                         "corrupt; name the CSV, JSON or log the toolkit wrote") from None


def open_text(path) -> io.StringIO:
    """`read_text` as a stream, a drop-in for `open(path, newline="")` in csv and line readers."""
    return io.StringIO(read_text(path), newline="")
