# resnet.c build. `make` builds the library and the `resnet` command,
# `make test` builds and runs the test suite, after `make fixtures` has
# written the PyTorch parity fixtures (it needs Debian's python3-torch and
# python3-torchvision; `scripts/install-deps.sh --test` installs them).
#
# The default build runs on any x86-64 CPU; hot loops choose AVX-512 or AVX2
# at run time. NATIVE=1 adds -march=native for benchmarks on this machine.

CC      ?= gcc
# A build limited by ISA (below) gets a folder of its own, so that it never
# mixes objects with the default build's.
ISA     ?=
ifneq ($(ISA),)
BUILD   ?= build/isa-$(ISA)
endif
BUILD   ?= build
CFLAGS  ?= -O3 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter -MMD -MP
CFLAGS  += -Iinclude -Isrc
ifeq ($(NATIVE),1)
CFLAGS  += -march=native
endif
# ISA=avx2 or ISA=baseline limits the build to the code that CPUs without
# AVX-512 (or without AVX2) run, so that this machine can test it; `make
# test-isa` does both. Their tests hold OpenBLAS to matching kernels.
ifeq ($(ISA),avx2)
CFLAGS  += -DRN_ISA_AVX2
OPENBLAS_CORE = Haswell
else ifeq ($(ISA),baseline)
CFLAGS  += -DRN_ISA_BASELINE
OPENBLAS_CORE = Prescott
else ifneq ($(ISA),)
$(error ISA=$(ISA) is not known: use avx2 or baseline, or leave it empty)
endif
# OpenBLAS's OpenMP build (Debian's libopenblas-openmp-dev): the library
# calls sgemm from its own OpenMP threads, and the pthread build serializes
# concurrent calls on an internal lock (measured: 2 threads ran no faster
# than 1). Linked by path with an rpath, so that the system's choice of
# libopenblas.so.0 alternative does not matter.
MULTIARCH    := $(shell $(CC) -print-multiarch)
OPENBLAS_DIR ?= /usr/lib/$(MULTIARCH)/openblas-openmp
CFLAGS  += -I/usr/include/$(MULTIARCH)/openblas-openmp
LDFLAGS += -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR)
LDLIBS  = -lopenblas -lpng -ljpeg -lz -lpthread -lm
LDFLAGS += -fopenmp

LIB_SRC  = $(wildcard src/*/*.c)
CLI_SRC  = $(wildcard cli/*.c)
TEST_SRC = $(wildcard tests/*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o)

PYTHON   ?= /usr/bin/python3
FIXTURES ?= $(BUILD)/fixtures

.PHONY: all test test-isa fixtures clean

all: $(BUILD)/resnet $(BUILD)/run_tests

$(BUILD)/libresnet.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/resnet: $(CLI_OBJ) $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Regenerated when the generator or the PyTorch models change.
fixtures: $(FIXTURES)/.complete

$(FIXTURES)/.complete: tools/make_fixtures.py tools/torch_models.py tools/safetensors_io.py
	$(PYTHON) tools/make_fixtures.py $(FIXTURES)
	touch $@

# The suite uses the resnet binary for its command-line tests, PyTorch
# (through $(PYTHON)) for the round trip and the fixtures for parity.
test: all fixtures
	$(if $(OPENBLAS_CORE),OPENBLAS_CORETYPE=$(OPENBLAS_CORE)) \
	RESNET_BIN=$(BUILD)/resnet RESNET_PYTHON=$(PYTHON) RESNET_FIXTURES=$(FIXTURES) \
	    $(BUILD)/run_tests

# The suite on the AVX2 and the baseline x86-64 builds, in their own build
# folders, with this build's fixtures.
test-isa: fixtures
	$(MAKE) BUILD=$(BUILD)/isa-avx2 ISA=avx2 FIXTURES=$(FIXTURES) test
	$(MAKE) BUILD=$(BUILD)/isa-baseline ISA=baseline FIXTURES=$(FIXTURES) test

# Layer timing of the three convolution paths (bench/conv_paths.c).
$(BUILD)/conv_paths: $(BUILD)/bench/conv_paths.o $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
