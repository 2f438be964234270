#pragma once

#include <boost/system/result.hpp>

#include <cstddef>
#include <filesystem>
#include <string>

namespace subsync::config::detail {

/// The whole content of a regular file, at most max_bytes; else "cannot read PATH: <errno text>"
/// or "PATH is larger than N bytes". POSIX I/O so the message carries the real errno.
boost::system::result<std::string, std::string> read_file(const std::filesystem::path& file,
                                                           std::size_t max_bytes);

/// Empty when the file can be opened for reading and is a regular file, else why not
/// ("cannot read PATH: <errno text>" or "PATH is not a regular file").
std::string check_readable_file(const std::filesystem::path& file);

}  // namespace subsync::config::detail
