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

# The whole suite with the long versions of the crash test (2,000 kills), the property
# tests and the fuzzers (KIOSK_SOAK makes each of them run longer); CI runs the bounded ones.
soak: setup
	KIOSK_SOAK=1 .venv/bin/pytest -p no:cacheprovider --timeout 3600

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
