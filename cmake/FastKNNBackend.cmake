# fastknn_select_backend(): sets FASTKNN_BACKEND (if empty, Kokkos' default device) and
# FASTKNN_BACKEND_UPPER, and fails early when the found Kokkos lacks the requested backend.
function(fastknn_select_backend)
  set(devices ${Kokkos_DEVICES})
  if(FASTKNN_BACKEND STREQUAL "")
    # Kokkos' default device: a GPU backend if there is one, else the host parallel one.
    foreach(candidate CUDA HIP SYCL OPENMPTARGET OPENMP THREADS HPX SERIAL)
      if(candidate IN_LIST devices)
        set(chosen ${candidate})
        break()
      endif()
    endforeach()
  else()
    string(TOUPPER "${FASTKNN_BACKEND}" chosen)
  endif()
  kokkos_check(DEVICES ${chosen} RETURN_VALUE ok)
  if(NOT ok)
    message(FATAL_ERROR
      "FASTKNN_BACKEND=${FASTKNN_BACKEND}: the Kokkos found at ${Kokkos_DIR} has only "
      "[${Kokkos_DEVICES}]. Build or install Kokkos with Kokkos_ENABLE_${chosen}=ON and point "
      "CMake at it with -DKokkos_ROOT=<prefix>, or pick one of the listed backends.")
  endif()
  set(names SERIAL Serial OPENMP OpenMP THREADS Threads CUDA Cuda HIP HIP SYCL SYCL HPX HPX
            OPENMPTARGET OpenMPTarget)
  list(FIND names ${chosen} pos)
  math(EXPR pos "${pos} + 1")
  list(GET names ${pos} pretty)
  set(FASTKNN_BACKEND ${pretty} PARENT_SCOPE)
  set(FASTKNN_BACKEND_UPPER ${chosen} PARENT_SCOPE)
  message(STATUS "fastknn: backend for tools and benchmarks: ${pretty}")
endfunction()
