# The README's two commands: `make lab` and `make test`. Everything else is for maintainers.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.akash-nb-installed
STUDENT_STAMP := $(VENV)/.akash-nb-student
LEARNER_STAMP := $(VENV)/.akash-nb-learner
# `local` when the lessons need the embedded model; otherwise what points them elsewhere (a class server,
# AkashML): then `make lab` installs the student set only, with nothing to compile. With the embedded model,
# `make lab` installs the learner set (the student set and the prebuilt engine, no test tools): the full set
# is `make venv`'s, which `make test` needs.
PROVIDER_SET := $(shell bash scripts/provider.sh)
RUNTIME := $(if $(filter local,$(PROVIDER_SET)),learner,student)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: site site-test site-serve help venv learner student join browser-deps browser lab test unit lint nbval-replay nbval-live run serve stop doctor notebooks record bench docs lowest clean

help:
	@echo "make lab    JupyterLab on the lessons (embedded model when no key is configured)"
	@echo "make join URL=... KEY=...  a student's set-up for a class server: writes .env, checks it answers"
	@echo "make student  the student set alone: the lessons' runtime and JupyterLab, nothing to compile"
	@echo "make test   the whole test suite (unit, faults, notebooks under replay and on the live model)"
	@echo "make run    execute every lesson on the configured provider into build/run/"
	@echo "make serve  start the shared embedded model server;  make stop  stop it"
	@echo "make notebooks  re-execute the lessons under replay and commit-ready outputs"
	@echo "make record     re-record the lessons' HTTP (UPSTREAM=local|akashml|URL), then make notebooks"
	@echo "make docs       the guide page and the lessons' HTML, from the committed lessons, into build/docs/"
	@echo "make site   the static in-browser site of the lessons (JupyterLite, Pyodide, wllama, the model) in build/site/"
	@echo "make site-serve  serve build/site/ on http://127.0.0.1:$(SITE_PORT)/ for a person to open"
	@echo "make lowest  the offline unit tests on every requirement's lowest declared version (LOWEST_PYTHON=...)"

# The static in-browser site (issue 22): scripts/site.py builds it offline from PyPI and npm alone, every wheel
# pinned by hash in browser/wheels.lock (`$(PY) scripts/site.py --update-lock` resolves them again).
SITE_PORT ?= 8765
site: venv
	$(PY) scripts/site.py

# The site in headless Chromium, every host but the site's refused: each lesson on the recordings in the tab,
# compared with the committed outputs; lesson 01 on the in-browser model; Pyodide and the bridge on their own.
SITE_TESTS := $(wildcard tests/test_site.py tests/test_pyodide.py tests/test_bridge.py)
site-test: venv browser-deps site
	$(PY) -m pytest -q -m browser $(SITE_TESTS)

site-serve:
	@test -f build/site/index.html || { echo "build/site/ is not built: run make site first." >&2; exit 1; }
	@echo "Open http://127.0.0.1:$(SITE_PORT)/lab/index.html (Ctrl-C stops it)."
	$(PY) -m http.server --bind 127.0.0.1 --directory build/site $(SITE_PORT)

venv: $(STAMP)
$(STAMP): pyproject.toml scripts/venv.sh scripts/engine.lock
	@VENV=$(VENV) bash scripts/venv.sh

# The learner set: the lessons' runtime, JupyterLab and the embedded model (the prebuilt engine, or llama.cpp
# compiled where no wheel fits), without the test tools. A full .venv has it already.
learner: $(if $(wildcard $(STAMP)),$(STAMP),$(LEARNER_STAMP))
$(LEARNER_STAMP): pyproject.toml scripts/venv.sh scripts/engine.lock
	@VENV=$(VENV) EXTRAS=local,lab STAMP=$(LEARNER_STAMP) bash scripts/venv.sh

# The student set: the lessons' runtime and JupyterLab, wheels only (no compiler, no engine, no test tools).
# A full .venv has it already.
student: $(if $(wildcard $(STAMP)),$(STAMP),$(STUDENT_STAMP))
$(STUDENT_STAMP): pyproject.toml scripts/venv.sh
	@VENV=$(VENV) EXTRAS=lab STAMP=$(STUDENT_STAMP) bash scripts/venv.sh

lab: $(RUNTIME)
	$(VENV)/bin/akash-nb lab $(LAB_ARGS)

# A student's one line: `make join URL=http://192.168.1.20:8080/v1 KEY=...` (the teacher's screen shows it).
join: student
	@$(VENV)/bin/akash-nb join "$(URL)" "$(KEY)"

test: venv lint unit nbval-replay nbval-live browser site-test

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work offline).
browser-deps:
	@bash scripts/chromium.sh

# The same checks pre-commit runs (.pre-commit-config.yaml): ruff's rules and format, mypy --strict over
# akash_nb (pyproject.toml says why that strictness), actionlint, and ruff over the lessons' code.
LINTED := akash_nb tests scripts browser/httpx2_jsfetch $(wildcard benchmarks)
lint: venv
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/ruff check $(NOTEBOOKS)

# On every core (pytest-xdist, -n auto: each worker its own session, so its own shared embedded server), the
# 15 slowest tests listed at the end; then the `serial` tests alone, whose short time limits workers overrun.
unit: venv
	$(PY) -m pytest -q -n auto --durations=15 -m "not browser and not serial" tests
	$(PY) -m pytest -q --durations=5 -m "serial and not browser" tests

# Every lesson run in JupyterLab in headless Chromium, widgets clicked (screenshots in build/screenshots/).
browser: venv browser-deps
	$(PY) -m pytest -q -m browser tests/test_browser.py

# Exact comparison of every output against the committed notebooks, answers replayed from recordings/,
# with no network but loopback (scripts/offline.sh).
nbval-replay: venv
	AKASH_NB_PROVIDER=replay bash scripts/offline.sh $(PY) -m pytest -q -p no:cacheprovider --nbval --nbval-current-env \
	  --nbval-sanitize-with tests/sanitize.cfg $(NOTEBOOKS)

# Every lesson executed on the real embedded model (or LIVE_PROVIDER=akashml, as the weekly CI does); only
# cells marked nbval-check-output are compared.
LIVE_PROVIDER ?= local
nbval-live: venv
	AKASH_NB_PROVIDER=$(LIVE_PROVIDER) $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/sanitize.cfg $(NOTEBOOKS)

# Like `lab`: on the student route (a class server, AkashML) the student set alone, nothing compiled or
# fetched; the doctor then checks that provider and leaves the embedded model alone.
run: $(RUNTIME)
	$(VENV)/bin/akash-nb run

serve: venv
	$(VENV)/bin/akash-nb serve

# Stopping needs no engine: on the student set it says no embedded model server was running.
stop: $(RUNTIME)
	$(VENV)/bin/akash-nb stop

doctor: $(RUNTIME)
	$(VENV)/bin/akash-nb doctor

notebooks: venv
	$(VENV)/bin/akash-nb refresh $(NOTEBOOKS)

record: venv
	$(VENV)/bin/akash-nb record --upstream $(or $(UPSTREAM),local) $(RECORD_FLAGS) $(NOTEBOOKS)
	$(MAKE) notebooks

# The guide page (seed format) and every lesson as HTML, from the committed lessons' outputs.
docs: venv
	$(VENV)/bin/akash-nb export-docs

# pyproject.toml's lower bounds: every requirement at its floor in build/lowest-venv, then the offline unit
# tests (scripts/lowest.sh). CI runs it on Python 3.10 as its own job, not in .ci/run.
LOWEST_PYTHON ?= python3
lowest:
	bash scripts/lowest.sh $(LOWEST_PYTHON)

# `make bench ONLY=engines,single` runs some sections (benchmarks/run.py --help names them).
bench: venv
	$(PY) benchmarks/run.py $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf build .pytest_cache
