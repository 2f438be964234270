# Warnings and sanitizers for our own targets. Linked PRIVATE everywhere, so
# they never leak into consumers; third-party headers come in as SYSTEM
# (imported targets), so their warnings never fail our build.
add_library(subsync_options INTERFACE)
target_compile_options(subsync_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wold-style-cast -Wnon-virtual-dtor -Wimplicit-fallthrough -Werror)

if(SUBSYNC_SANITIZE)
  target_compile_options(subsync_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(subsync_options INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
