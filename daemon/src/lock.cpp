#include <subsync/daemon/lock.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>

namespace subsync::daemon {
namespace {

int open_lock_file(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        throw std::system_error(errno, std::generic_category(), fmt::format("cannot open lock file {}", path.string()));
    return fd;
}

/// The pid written into the lock file, or empty while the owner has not written it yet.
std::string read_pid(int fd) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string pid;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid += buf[i];
    return pid;
}

/// The pid of a FLOCK lock on inode `ino` in /proc/locks ("1: FLOCK  ADVISORY  WRITE 1234
/// 08:01:5678 0 EOF"): 0 when the lock is held but its pid is not visible here, nullopt when the
/// inode is not locked.
std::optional<long> flock_holder(ino_t ino) {
    std::ifstream locks("/proc/locks");
    std::string line;
    while (std::getline(locks, line)) {
        std::istringstream in(line);
        std::string ordinal, type, mode, access, dev_ino;
        long pid = 0;
        if (!(in >> ordinal >> type)) continue;
        if (type == "->") in >> type;  // a waiter: "1: -> FLOCK ..."
        if (type != "FLOCK" || !(in >> mode >> access >> pid >> dev_ino)) continue;
        if (line.find(" -> ") != std::string::npos) continue;
        const auto colon = dev_ino.rfind(':');
        if (colon == std::string::npos) continue;
        if (std::strtoull(dev_ino.c_str() + colon + 1, nullptr, 10) == ino) return pid;
    }
    return std::nullopt;
}

}  // namespace

std::optional<long> instance_lock::holder_pid(const std::filesystem::path& database) {
    const auto path = path_for(database);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return std::nullopt;
    struct stat st{};
    std::optional<long> pid;
    if (::fstat(fd, &st) == 0) pid = flock_holder(st.st_ino);
    if (pid && *pid <= 0) {
        const std::string written = read_pid(fd);
        pid = written.empty() ? 0 : std::stol(written);
    }
    ::close(fd);
    return pid;
}

std::filesystem::path instance_lock::path_for(const std::filesystem::path& database) {
    auto p = database;
    p += ".lock";
    return p;
}

std::optional<instance_lock> instance_lock::try_acquire(const std::filesystem::path& database, std::string& holder) {
    const auto path = path_for(database);
    const int fd = open_lock_file(path);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        const std::string pid = read_pid(fd);
        ::close(fd);
        if (err != EWOULDBLOCK)
            throw std::system_error(err, std::generic_category(), fmt::format("cannot lock {}", path.string()));
        holder = pid.empty() ? fmt::format("another subsyncd holds {}", path.string())
                             : fmt::format("another subsyncd (pid {}) holds {}", pid, path.string());
        return std::nullopt;
    }
    instance_lock lock(fd, path);
    lock.write_pid();
    return lock;
}

instance_lock instance_lock::acquire(const std::filesystem::path& database) {
    const auto path = path_for(database);
    const int fd = open_lock_file(path);
    while (::flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), fmt::format("cannot lock {}", path.string()));
    }
    instance_lock lock(fd, path);
    lock.write_pid();
    return lock;
}

void instance_lock::write_pid() {
    const std::string text = fmt::format("{}\n", ::getpid());
    // Best effort: the pid only improves the message another instance prints.
    if (::ftruncate(fd_, 0) != 0) return;
    [[maybe_unused]] const ssize_t written = ::pwrite(fd_, text.data(), text.size(), 0);
}

instance_lock::instance_lock(instance_lock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

instance_lock& instance_lock::operator=(instance_lock&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
        path_ = std::move(other.path_);
    }
    return *this;
}

instance_lock::~instance_lock() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace subsync::daemon
