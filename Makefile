# The two commands of the README: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
BIN := .venv/bin

.PHONY: demo test bench clean

$(BIN)/vecmig: pyproject.toml
	$(PYTHON) -m venv .venv
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(BIN)/vecmig
	$(BIN)/vecmig upgrade head
	$(BIN)/vecmig current

test: $(BIN)/vecmig
	$(BIN)/python -m vecmig.testing.weaviate_server build
	$(BIN)/python -m pytest -q

clean:
	rm -rf .venv .vecmig
