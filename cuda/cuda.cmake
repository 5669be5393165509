# cuda/cuda.cmake : the CUDA backend, included by CMakeLists.txt when nvcc is
# found (SVOO_CUDA=AUTO/ON). Builds every cuda/*.cu into one object library
# whose objects go into libsvoo (SVOO_CUDA_OBJECTS) and links the static CUDA
# runtime (SVOO_CUDA_LIBS). Compiles without a GPU (CI).
#
# Architectures: sm_80 (A100), sm_86 (RTX 3090), sm_89 (RTX 4090 / L40),
# sm_90a (H100 / H200), SASS only (no PTX) to keep the build short. Override
# with -DCMAKE_CUDA_ARCHITECTURES=90a-real for a quick Hopper-only build.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES "80-real;86-real;89-real;90a-real")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
if(NOT CMAKE_CUDA_FLAGS_RELEASE)
  set(CMAKE_CUDA_FLAGS_RELEASE "-O3")
endif()
message(STATUS "svoo: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")

file(GLOB SVOO_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/cuda/*.cu)
add_library(svoo_cuda OBJECT ${SVOO_CUDA_SOURCES})
target_include_directories(svoo_cuda PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src
                                             ${PROJECT_SOURCE_DIR}/cuda)
target_compile_definitions(svoo_cuda PRIVATE ${SVOO_DEFS} SVOO_WITH_CUDA)
# the Hopper wgmma kernels (attention: dispatched in cuda/attend_sm80.cu;
# assignment: svoo_cu_plan_setup) run only when an sm_90a image is built; "90"
# or "native" builds use the mma.sync kernels
if(CMAKE_CUDA_ARCHITECTURES MATCHES "90a")
  target_compile_definitions(svoo_cuda PRIVATE SVOO_HAVE_SM90A)
endif()
if(EXISTS ${PROJECT_SOURCE_DIR}/cuda/attend_sm80.cu)
  target_compile_definitions(svoo_cuda PRIVATE SVOO_HAVE_CUDA_ATTEND)
endif()
target_compile_options(svoo_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-fvisibility=hidden -Xcompiler=-Wall>)
target_link_libraries(svoo_cuda PRIVATE CUDA::cudart_static)
set_target_properties(svoo_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_SEPARABLE_COMPILATION OFF)
# fail the compile when ptxas serialises wgmma (it says so as info only; cuda/ptxas_guard.sh),
# in front of any launcher the user set (e.g. ccache)
set(SVOO_CUDA_LAUNCHER ${PROJECT_SOURCE_DIR}/cuda/ptxas_guard.sh ${CMAKE_CUDA_COMPILER_LAUNCHER})
set_target_properties(svoo_cuda PROPERTIES CUDA_COMPILER_LAUNCHER "${SVOO_CUDA_LAUNCHER}")

# the C library, the CLI and the tests know the backend is there
target_compile_definitions(svoo_obj PRIVATE SVOO_WITH_CUDA)
add_compile_definitions(SVOO_WITH_CUDA)

set(SVOO_CUDA_OBJECTS $<TARGET_OBJECTS:svoo_cuda>)
# stdc++: the nvcc-compiled objects may reference the C++ runtime when the
# final link is done by the C compiler
set(SVOO_CUDA_LIBS CUDA::cudart_static stdc++)

# GPU test program (not a ctest: CI has no GPU). `make test-cuda` runs it.
if(EXISTS ${PROJECT_SOURCE_DIR}/tests/cuda/test_cuda.c)
  add_executable(test_cuda ${PROJECT_SOURCE_DIR}/tests/cuda/test_cuda.c)
  target_include_directories(test_cuda PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_compile_definitions(test_cuda PRIVATE ${SVOO_DEFS})
  target_compile_options(test_cuda PRIVATE ${SVOO_WARN} ${SVOO_FLAGS})
  target_link_libraries(test_cuda PRIVATE svoo_static CUDA::cudart_static)
  if(CMAKE_CUDA_ARCHITECTURES MATCHES "90a") # the test expects the Hopper kernels' features
    target_compile_definitions(test_cuda PRIVATE SVOO_HAVE_SM90A)
  endif()
endif()
