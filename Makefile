# Two entry points; both set everything up first (see scripts/setup.sh).
.PHONY: run test lint bench setup

run:
	@scripts/setup.sh
	.venv/bin/marginbot run

test:
	@scripts/setup.sh --test
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check .

bench:
	@scripts/setup.sh
	.venv/bin/marginbot bench reports
	.venv/bin/marginbot bench push
