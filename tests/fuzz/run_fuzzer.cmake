# Runs one libFuzzer target for a bounded time on a scratch copy of its seed corpus, so a CTest run
# never modifies anything tracked or generated elsewhere.
#   cmake -DFUZZER=<exe> -DSEEDS=<seed dir> -DWORK=<scratch dir> -DSECONDS=<n> -P run_fuzzer.cmake
# Fails (with the fuzzer's report) on any crash, sanitizer report, leak, timeout or OOM; the input
# that triggered it is left in <scratch dir>/artifacts/.

foreach(var FUZZER SEEDS WORK SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
if(IS_DIRECTORY ${SEEDS})
  file(GLOB seeds ${SEEDS}/*)
  if(seeds)
    file(COPY ${seeds} DESTINATION ${WORK}/corpus)
  endif()
endif()

execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=5
          -print_final_stats=1 -artifact_prefix=${WORK}/artifacts/ ${WORK}/corpus
  WORKING_DIRECTORY ${WORK}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE log
  ERROR_VARIABLE log)
file(WRITE ${WORK}/fuzz.log "${log}")

if(NOT rc EQUAL 0)
  file(GLOB artifacts ${WORK}/artifacts/*)
  message("${log}")
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); reproducer(s): ${artifacts}")
endif()
# On success print only the summary: the seed, the last status line and the final stats.
string(REGEX MATCHALL "(INFO: Seed: [0-9]+|#[0-9]+[ \t]+DONE[^\n]*|stat::[^\n]*)" summary "${log}")
list(JOIN summary "\n" summary)
message("${summary}")
