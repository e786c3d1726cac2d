# How the tests start P ranks on this machine: mpiexec with more ranks than cores allowed, and,
# for Open MPI, what it needs to run as root (CI runs as root) and in a container.
# Under AddressSanitizer, leak checking is off for MPI runs: Open MPI keeps allocations until
# exit in components it has unloaded by then (LeakSanitizer cannot even name them). Memory
# errors still abort; fastknn's own leaks are checked by the single-process suites.
set(FASTKNN_MPI_ENVIRONMENT "OMP_PROC_BIND=false" "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
set(fastknn_mpi_flags "")
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE fastknn_mpiexec_version
                ERROR_QUIET TIMEOUT 20)
if(fastknn_mpiexec_version MATCHES "Open MPI|OpenRTE")
  list(APPEND fastknn_mpi_flags --oversubscribe)
  list(APPEND FASTKNN_MPI_ENVIRONMENT OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
       OMPI_MCA_rmaps_base_oversubscribe=1)
endif()

# Sets `out` to the command line that runs `program` (with its arguments) on `np` ranks.
function(fastknn_mpi_command out np)
  set(${out} ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${fastknn_mpi_flags}
      ${MPIEXEC_PREFLAGS} ${ARGN} ${MPIEXEC_POSTFLAGS} PARENT_SCOPE)
endfunction()
