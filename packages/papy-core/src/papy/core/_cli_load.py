"""Loading the pipeline file of a ``papy`` command."""

from __future__ import annotations

import traceback

from papy.core._errors import PipelineFileError
from papy.core._save import LoadedPipeline, load_pipeline_file


def load_pipeline(path: str) -> LoadedPipeline:
    """``load_pipeline_file``, where a file that calls ``sys.exit()`` while
    loading (often a module-level argument parser, which rejects papy's own
    command line) is a broken pipeline file, not the end of the command:
    PipelineFileError."""
    try:
        return load_pipeline_file(path)
    except SystemExit as exit_:
        raise PipelineFileError(
            f"pipeline file {path!r} called sys.exit({exit_.code!r}) while "
            "loading (an argument parser at module level does that when it "
            "rejects papy's command line); papy imports the file, so code "
            "that parses the command line or exits must go under "
            "'if __name__ == \"__main__\":'",
            traceback.format_exc(),
        ) from exit_
