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

test-asan: deps-test
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSVOO_ASAN=ON -DSVOO_CUDA=OFF
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j 1

# GPU tests (needs a CUDA device): test_cuda, then memcheck + racecheck on a
# quick subset. Builds only when $(BUILD)/test_cuda is missing, so a build
# made elsewhere can be carried to the GPU machine (docs/CUDA.md).
SANITIZER ?= $(shell command -v compute-sanitizer 2>/dev/null || echo /usr/local/cuda/bin/compute-sanitizer)
test-cuda:
	@[ -x $(BUILD)/test_cuda ] || $(MAKE) --no-print-directory build
	./$(BUILD)/test_cuda
	SVOO_TEST_QUICK=1 $(SANITIZER) --tool memcheck --error-exitcode 1 ./$(BUILD)/test_cuda
	SVOO_TEST_QUICK=1 $(SANITIZER) --tool racecheck --error-exitcode 1 ./$(BUILD)/test_cuda

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan
