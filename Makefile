# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# The numerically sensitive tests, run again under each CPU kernel set PyTorch and oneDNN choose
# between, so that the suite passes on every x86-64 machine and not only on ours. The engine
# tests (tests/inference/test_engines.py) are not among them: ONNX Runtime and OpenVINO pick
# their own kernels, and their exports and calibrations took 3 of CI's minutes per pass.
# The suite runs in one worker per core (two on CI), each worker on one thread: the ONNX exports
# are single-threaded Python, and beside them the other tests use the second core. Whole files go
# to one worker, so that a module's costly fixture (an export) is made once. Each worker holds
# its own models (VGG16 nets of 0.5 GB each), hence a fixed count rather than one per core.
WORKERS  ?= 2
PYTEST   := $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile
PORTABLE := tests/blocks/test_convolutionalize.py tests/inference/test_inference.py \
            tests/files/test_reference.py::test_outputs_equal_the_reference \
            tests/models/test_models.py::test_bilinear_kernel_matches_interpolate_inside

.PHONY: demo test lint test-portable fuzz clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the project metadata changes.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fcnseg demo --out demo_out

test: lint
	$(PYTEST)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The same tests under each instruction set: default (no vector ISA), AVX2 and AVX-512 for
# PyTorch's own kernels, and oneDNN limited to AVX2 (a machine without AVX-512 or AMX).
test-portable: $(STAMP)
	ATEN_CPU_CAPABILITY=default $(PYTEST) $(PORTABLE)
	ONEDNN_MAX_CPU_ISA=AVX2 $(PYTEST) $(PORTABLE)
	@# A kernel set the CPU lacks is an illegal instruction, not a test: run those it has.
	@for isa in avx2 avx512; do \
	  flag=$$isa; [ $$isa = avx512 ] && flag=avx512f; \
	  if grep -qw $$flag /proc/cpuinfo 2>/dev/null; then \
	    echo "ATEN_CPU_CAPABILITY=$$isa"; \
	    ATEN_CPU_CAPABILITY=$$isa $(PYTEST) $(PORTABLE) || exit 1; \
	  else echo "ATEN_CPU_CAPABILITY=$$isa: skipped, this CPU has no $$flag"; fi; \
	done

# The property-based tests at length (CI runs them briefly as part of `make test`).
fuzz: $(STAMP)
	FCNSEG_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest tests -m fuzz

clean:
	rm -rf $(VENV) demo_out runs
