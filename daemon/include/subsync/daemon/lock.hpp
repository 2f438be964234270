#pragma once
// One writer per database: an advisory flock(2) on `<database>.lock`, holding the owner's pid.
// The kernel drops the lock when the process dies (kill -9 included), so it is never stale;
// the pid is only there to name the holder in messages.

#include <filesystem>
#include <optional>
#include <string>

namespace subsync::daemon {

class instance_lock {
public:
    /// The lock file guarding `database`: the same path with ".lock" appended.
    [[nodiscard]] static std::filesystem::path path_for(const std::filesystem::path& database);

    /// Takes the lock without waiting: nullopt when another process holds it, with
    /// `holder` set to a message naming it ("held by pid 1234 (…)"). Throws std::system_error
    /// when the file cannot be created.
    static std::optional<instance_lock> try_acquire(const std::filesystem::path& database, std::string& holder);

    /// The pid of the process holding the lock of `database`, read from /proc/locks without
    /// touching the lock (a probe with flock would make a concurrent try_acquire fail); falls back
    /// to the pid written in the file when the holder's pid is not visible (another pid namespace).
    /// nullopt when nobody holds it or the file does not exist.
    [[nodiscard]] static std::optional<long> holder_pid(const std::filesystem::path& database);

    /// Waits until the lock is free, then takes it. Throws std::system_error when the file
    /// cannot be created.
    static instance_lock acquire(const std::filesystem::path& database);

    instance_lock(instance_lock&& other) noexcept;
    instance_lock& operator=(instance_lock&& other) noexcept;
    instance_lock(const instance_lock&) = delete;
    instance_lock& operator=(const instance_lock&) = delete;
    ~instance_lock();  ///< releases the lock (the file stays: removing it would race a new owner)

private:
    explicit instance_lock(int fd, std::filesystem::path path) noexcept : fd_(fd), path_(std::move(path)) {}
    void write_pid();

    int fd_ = -1;
    std::filesystem::path path_;
};

}  // namespace subsync::daemon
