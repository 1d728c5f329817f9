"""nbgrader configuration: solutions/ is the source directory, exercises/ the release directory.

`make exercises` runs `nbgrader generate_assignment CHAPTER --no-db --force` for every chapter;
the output is byte-identical for the same source, so CI can demand that exercises/ stays in sync.
"""

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

import os  # noqa: E402

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# Release straight into exercises/NN_topic/ (no course-id subfolder).
c.CourseDirectory.course_id = ""

# RL checks run learning experiments: the default 30 s per cell is far too short.
c.Execute.timeout = 600
c.ExecutePreprocessor.timeout = 600

# A learner who deletes a grade cell still gets it back (and its grade) at autograde time.
c.OverwriteCells.add_missing_cells = True

# The lessons' and checks' own helper cells are not graded; only cells with nbgrader metadata are.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError(\"Write your solution here, then run the check cell below.\")",
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
