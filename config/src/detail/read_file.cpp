#include "detail/read_file.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace subsync::config::detail {
namespace {

std::string errno_text(int e) { return std::generic_category().message(e); }

/// Closes the descriptor on every path out.
class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    [[nodiscard]] int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

boost::system::result<std::string, std::string> read_file(const std::filesystem::path& file,
                                                           std::size_t max_bytes) {
    // T and E are both std::string, so each return names its side.
    using boost::system::in_place_error;
    const fd_guard fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0)
        return {in_place_error, fmt::format("cannot read {}: {}", file.string(), errno_text(errno))};

    std::string content;
    char buf[4096];
    for (;;) {
        const ::ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return {in_place_error, fmt::format("cannot read {}: {}", file.string(), errno_text(errno))};
        }
        if (n == 0) break;
        // Bounded so that a path like /dev/zero or a misplaced log file cannot exhaust memory.
        if (content.size() + static_cast<std::size_t>(n) > max_bytes)
            return {in_place_error, fmt::format("{} is larger than {} bytes", file.string(), max_bytes)};
        content.append(buf, static_cast<std::size_t>(n));
    }
    return {boost::system::in_place_value, std::move(content)};
}

std::string check_readable_file(const std::filesystem::path& file) {
    const fd_guard fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return fmt::format("cannot read {}: {}", file.string(), errno_text(errno));
    struct ::stat st{};
    if (::fstat(fd.get(), &st) != 0)
        return fmt::format("cannot read {}: {}", file.string(), errno_text(errno));
    if (!S_ISREG(st.st_mode)) return fmt::format("{} is not a regular file", file.string());
    return {};
}

}  // namespace subsync::config::detail
