# Installs the systemd units and the example config (run by `cmake --install` and cpack; see the
# packaging section at the end of the top-level CMakeLists.txt). Expects SUBSYNC_SOURCE_DIR,
# SUBSYNC_STAGING_DIR, SUBSYNC_UNIT_DIR (absolute, or relative to the install prefix) and
# SUBSYNC_CONFIG_DIR (absolute).
#
# The units name the binary and the docs by absolute path: they are rewritten for the prefix of
# this install (/usr for the .deb, /usr/local by default). The config goes to /etc/subsync
# (where ConfigurationDirectory=subsync points) unless told otherwise, and only if there is none
# yet: an install never overwrites an operator's config (the .deb also marks it as a conffile).

if(IS_ABSOLUTE "${SUBSYNC_UNIT_DIR}")
  set(unit_dir "${SUBSYNC_UNIT_DIR}")
else()
  set(unit_dir "${CMAKE_INSTALL_PREFIX}/${SUBSYNC_UNIT_DIR}")
endif()

file(MAKE_DIRECTORY "${SUBSYNC_STAGING_DIR}")
foreach(unit subsyncd.service subsyncd-sync.service subsyncd-sync.timer)
  file(READ "${SUBSYNC_SOURCE_DIR}/systemd/${unit}" text)
  string(REPLACE "/usr/bin/subsyncd" "${CMAKE_INSTALL_PREFIX}/bin/subsyncd" text "${text}")
  string(REPLACE "file:///usr/share/doc/subsync" "file://${CMAKE_INSTALL_PREFIX}/share/doc/subsync" text "${text}")
  file(WRITE "${SUBSYNC_STAGING_DIR}/${unit}" "${text}")
  file(INSTALL DESTINATION "${unit_dir}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${SUBSYNC_STAGING_DIR}/${unit}")
endforeach()

if(EXISTS "$ENV{DESTDIR}${SUBSYNC_CONFIG_DIR}/subsync.toml")
  message(STATUS "Kept: $ENV{DESTDIR}${SUBSYNC_CONFIG_DIR}/subsync.toml (an install never overwrites the config)")
else()
  file(INSTALL DESTINATION "${SUBSYNC_CONFIG_DIR}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${SUBSYNC_SOURCE_DIR}/systemd/subsync.toml")
endif()
