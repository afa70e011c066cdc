#!/bin/sh
# The shell prysk runs a document's commands in (tests/test_docs_run.py): bash, started in the root
# of the fresh copy of the repository, where a reader of README.md types them, rather than in the
# empty directory prysk makes for each test file.
cd "${SMT_DOCS_CLONE:?the fresh copy to run the documents in}" || exit 1
exec /bin/bash "$@"
