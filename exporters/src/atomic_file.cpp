#include <subsync/exporters/atomic_file.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace subsync::exporters {
namespace {

constexpr std::size_t buffer_size = 1u << 20;

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& p) {
    throw std::system_error(errno, std::generic_category(), fmt::format("{} {}", what, p.string()));
}

}  // namespace

atomic_file::atomic_file(std::filesystem::path target, unsigned mode) : target_(std::move(target)) {
    auto dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    std::string pattern = (dir / ("." + target_.filename().string() + ".XXXXXX")).string();
    fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd_ < 0) fail("cannot create a temporary file for", target_);
    temp_ = pattern;
    // mkostemp creates 0600; exports are meant to be read by other tools.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    if (::fchmod(fd_, static_cast<mode_t>(mode) & ~mask) != 0) fail("cannot set the mode of", temp_);
    buffer_.reserve(buffer_size);
}

atomic_file::~atomic_file() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(temp_.c_str());
    }
}

void atomic_file::write(std::string_view bytes) {
    buffer_.append(bytes);
    written_ += bytes.size();
    if (buffer_.size() >= buffer_size) flush();
}

void atomic_file::flush() {
    std::size_t off = 0;
    while (off < buffer_.size()) {
        const auto n = ::write(fd_, buffer_.data() + off, buffer_.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write", temp_);
        }
        off += static_cast<std::size_t>(n);
    }
    buffer_.clear();
}

void atomic_file::commit() {
    flush();
    if (::fsync(fd_) != 0) fail("cannot fsync", temp_);
    if (::close(fd_) != 0) {
        fd_ = -1;
        fail("cannot close", temp_);
    }
    fd_ = -1;
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
        const int saved = errno;
        ::unlink(temp_.c_str());
        errno = saved;
        fail("cannot rename into place", target_);
    }
    auto dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);  // makes the rename itself durable
        ::close(dfd);
    }
}

}  // namespace subsync::exporters
