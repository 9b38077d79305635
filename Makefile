# Two commands: `make run` (set up, then the console chat on SQLite) and `make test`
# (set up, then the import contracts and the whole test suite). Each creates .venv and
# compiles the catalogs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYBABEL := $(BIN)/pybabel
LANGS := en ar ckb ku
CATALOGS := $(foreach l,$(LANGS),locales/$(l)/LC_MESSAGES/bot.po)
COMPILED := $(CATALOGS:.po=.mo)
ARGS ?=
# Independent tests run on two processes (pytest-xdist); the Matrix tier stays on one of them
# (one Synapse). WORKERS=0 runs everything in this process.
WORKERS ?= 2

.PHONY: run test setup setup-test i18n-extract i18n-update i18n-compile bench clean

run: setup i18n-compile
	$(BIN)/civicbot run $(ARGS)

test: setup-test i18n-compile
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup $(ARGS)

setup: $(VENV)/.installed-run
setup-test: $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

# Translation workflow: extract source strings, merge them into every catalog, compile.
i18n-extract: setup
	$(PYBABEL) extract -F babel.cfg -k _ -k N_ -k n_:1,2 --no-wrap --sort-by-file \
		--project civicbot --copyright-holder civicbot -o locales/bot.pot .

i18n-update: i18n-extract
	$(PYBABEL) update -D bot -i locales/bot.pot -d locales --no-wrap --ignore-obsolete

i18n-compile: $(COMPILED)

locales/%/LC_MESSAGES/bot.mo: locales/%/LC_MESSAGES/bot.po | setup
	$(PYBABEL) compile -D bot -d locales -l $* --statistics

bench: setup-test i18n-compile
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) locales/*/LC_MESSAGES/*.mo
