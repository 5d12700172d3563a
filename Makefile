# Convenience targets; the README's two commands (scripts/demo, scripts/test) need no make.
PY := .venv/bin/python

.PHONY: setup demo test lint bench bench-quick soak clean

setup:
	./scripts/setup

demo:
	./scripts/demo

test:
	./scripts/test

lint: setup
	.venv/bin/ruff check .

# Full-size benchmarks (county sample: 500,000 patrons, 2,000,000 items). Figures go to
# build/bench.json and are printed.
bench: setup
	$(PY) benchmarks/run.py --size full

# Small sizes, under 3 minutes.
bench-quick: setup
	$(PY) benchmarks/run.py --size quick

# The long crash and property runs that CI runs in a bounded version.
soak: setup
	KIOSK_SOAK=1 .venv/bin/pytest -m soak -p no:cacheprovider

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
