# svoo: the two commands a new user types are `make run` and `make test`.
# Both install missing Debian packages first when run as root (or print the
# one apt-get line and stop), then build with CMake into build/.

BUILD    ?= build
JOBS     ?= $(shell nproc)
CMAKE_ARGS ?=
DEB_PKGS := cmake gcc g++ make pkg-config libopenblas-openmp-dev libjson-c-dev libcmocka-dev \
            libpng-dev python3 python3-numpy python3-pytest
DEB_TEST_PKGS := valgrind clang libclang-rt-14-dev

.PHONY: all deps deps-test build run test test-c test-python test-asan test-cuda install fuzz valgrind clean

all: build

deps:
	@sh tools/deps.sh $(DEB_PKGS)

deps-test:
	@sh tools/deps.sh $(DEB_PKGS) $(DEB_TEST_PKGS)

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/svoo demo

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1
	@$(MAKE) --no-print-directory test-python

test-python:
	@if [ -d python/tests ]; then SVOO_LIBRARY_PATH=$(CURDIR)/$(BUILD)/libsvoo.so /usr/bin/python3 -m pytest -q python/tests; fi

# The whole ctest suite under ASan + UBSan + LeakSanitizer (docs/RELIABILITY.md).
# -O1 keeps asserts and stack traces and runs several times faster than -O0.
# tools/lsan.supp: OpenMP / OpenBLAS thread-pool internals only.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1 \
           LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
test-asan: deps-test
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DSVOO_ASAN=ON -DSVOO_CUDA=OFF
	cmake --build build-asan -j $(JOBS)
	cd build-asan && $(SAN_ENV) ctest --output-on-failure -j 1

# valgrind memcheck over the CLI (tools/valgrind.sh; builds build-valgrind/ without -march=native)
valgrind: deps-test
	sh tools/valgrind.sh

# libFuzzer targets (clang): build, then run each for FUZZ_SECONDS
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= safetensors npy profile_csv config
fuzz: deps-test
	fuzz/build.sh $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do echo "== fuzz_$$t ($(FUZZ_SECONDS) s)"; \
	    fuzz/run.sh $$t $(FUZZ_SECONDS) || exit 1; done

# GPU tests (needs a CUDA device): test_cuda, then memcheck, racecheck and
# synccheck on a quick subset. Builds only when $(BUILD)/test_cuda is missing, so a build
# made elsewhere can be carried to the GPU machine (docs/CUDA.md).
SANITIZER ?= $(shell command -v compute-sanitizer 2>/dev/null || echo /usr/local/cuda/bin/compute-sanitizer)
test-cuda:
	@[ -x $(BUILD)/test_cuda ] || $(MAKE) --no-print-directory build
	./$(BUILD)/test_cuda
	SVOO_TEST_QUICK=1 $(SANITIZER) --tool memcheck --error-exitcode 1 ./$(BUILD)/test_cuda
	RT= BUILD=$(BUILD) SANITIZER=$(SANITIZER) bash tools/device/racecheck.sh
	SVOO_TEST_QUICK=1 $(SANITIZER) --tool synccheck --error-exitcode 1 ./$(BUILD)/test_cuda

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan
