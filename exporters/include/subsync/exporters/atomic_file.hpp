#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace subsync::exporters {

/// A file that appears whole or not at all: bytes go to a temporary file in
/// the target's folder; commit() flushes, fsyncs, renames it over the target
/// and fsyncs the folder. Destroyed without commit(), it removes the temporary
/// file and leaves the target as it was.
class atomic_file {
public:
    /// Creates the temporary file (mode `mode`, before umask). Throws std::system_error naming the path.
    explicit atomic_file(std::filesystem::path target, unsigned mode = 0644);
    ~atomic_file();
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;

    /// Appends bytes (buffered). Throws std::system_error naming the path, e.g. on a full disk.
    void write(std::string_view bytes);

    /// Makes the file visible under its final name. Throws std::system_error naming the path.
    void commit();

    [[nodiscard]] std::size_t bytes_written() const noexcept { return written_; }
    /// Lower-case hex SHA-256 of everything written (for manifests).
    [[nodiscard]] std::string sha256_hex() const;
    [[nodiscard]] const std::filesystem::path& target() const noexcept { return target_; }

private:
    void flush();

    std::filesystem::path target_;
    std::filesystem::path temp_;
    int fd_ = -1;
    std::string buffer_;
    std::size_t written_ = 0;
    struct hasher;
    std::unique_ptr<hasher> hash_;
};

}  // namespace subsync::exporters
