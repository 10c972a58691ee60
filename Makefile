# The commands of the README: `make demo`, `make test` and `make bench`. Each sets up .venv itself.
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

# every benchmark in bench/, each writing its section of bench/RESULTS.md; fails if one missed its target
bench: $(BIN)/vecmig
	@status=0; for script in bench/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script || status=1; \
	done; exit $$status

clean:
	rm -rf .venv .vecmig
