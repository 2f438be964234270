# Warnings and sanitizers for our own targets. Linked PRIVATE everywhere, so
# they never leak into consumers; third-party headers come in as SYSTEM
# (imported targets), so their warnings never fail our build.
add_library(subsync_options INTERFACE)
target_compile_options(subsync_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wold-style-cast -Wnon-virtual-dtor -Wimplicit-fallthrough)

# Off by default so a packager's plain `-DCMAKE_BUILD_TYPE=Release` with another compiler or
# optimisation level is never stopped by a warning we have not seen; every preset in
# CMakePresets.json turns it on, so CI and developers still fail on any warning.
option(SUBSYNC_WERROR "Treat compiler warnings as errors (ON in every CMakePresets.json preset)" OFF)
if(SUBSYNC_WERROR)
  target_compile_options(subsync_options INTERFACE -Werror)
endif()

# GCC's -Wmismatched-new-delete misreads Asio's coroutine frame allocator (awaitable_frame_base's
# operator new/delete pair) once inlined at -O2 — a false positive (GCC PR middle-end/109224;
# the same warning in asio/awaitable code: erigontech/silkworm#2046, chriskohlhoff/asio#1391).
# Debug and ASan builds do not inline enough to see it; the release preset does.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(subsync_options INTERFACE -Wno-mismatched-new-delete)
endif()

if(SUBSYNC_SANITIZE)
  target_compile_options(subsync_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(subsync_options INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all)
endif()

# The `fuzz` preset (clang): every target of ours is instrumented for libFuzzer's coverage and
# checked by ASan and UBSan; the harnesses in fuzz/ link libFuzzer's main.
option(SUBSYNC_FUZZ "Build the libFuzzer harnesses in fuzz/ (clang only)" OFF)
if(SUBSYNC_FUZZ)
  target_compile_options(subsync_options INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(subsync_options INTERFACE -fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
