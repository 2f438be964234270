#include <subsync/daemon/metrics.hpp>
#include <subsync/daemon/process_metrics.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <ctime>
#include <utility>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string_view>
#include <vector>

namespace subsync::daemon {
namespace {

/// Seconds since boot now (CLOCK_BOOTTIME, the clock /proc/self/stat's starttime counts on), and
/// the Unix time now. Not /proc/stat's btime: the unit's ProcSubset=pid hides /proc/stat.
std::pair<double, double> boot_and_unix_now() {
    timespec boot{}, real{};
    ::clock_gettime(CLOCK_BOOTTIME, &boot);
    ::clock_gettime(CLOCK_REALTIME, &real);
    auto seconds = [](const timespec& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9; };
    return {seconds(boot), seconds(real)};
}

/// The fields of /proc/self/stat after `comm`, which is in parentheses and may hold spaces:
/// [0] is field 3 (state) of proc(5).
std::optional<std::vector<std::string>> stat_fields() {
    std::ifstream in("/proc/self/stat");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream rest(text.substr(close + 1));
    std::vector<std::string> fields{std::istream_iterator<std::string>(rest), std::istream_iterator<std::string>()};
    if (fields.size() < 22) return std::nullopt;
    return fields;
}

}  // namespace

std::optional<process_stats> read_process_stats() {
    const auto fields = stat_fields();
    if (!fields) return std::nullopt;
    const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    auto field = [&](int n) { return std::stoull((*fields)[static_cast<std::size_t>(n - 3)]); };  // proc(5) numbering
    process_stats s;
    s.cpu_seconds = static_cast<double>(field(14) + field(15)) / ticks;  // utime + stime
    const auto [since_boot, unix_now] = boot_and_unix_now();
    s.start_time_seconds = unix_now - since_boot + static_cast<double>(field(22)) / ticks;
    s.virtual_bytes = field(23);
    s.resident_bytes = field(24) * page;
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec))
        ++s.open_fds;
    if (s.open_fds > 0) --s.open_fds;  // the iterator's own descriptor
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) s.max_fds = lim.rlim_cur;
    return s;
}

std::string render_process_metrics(const process_stats& s) {
    metrics_registry r;
    r.add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", metric_type::counter)
        .set({}, s.cpu_seconds);
    r.add("process_open_fds", "Number of open file descriptors.", metric_type::gauge)
        .set({}, static_cast<double>(s.open_fds));
    if (s.max_fds)
        r.add("process_max_fds", "Maximum number of open file descriptors.", metric_type::gauge)
            .set({}, static_cast<double>(*s.max_fds));
    r.add("process_virtual_memory_bytes", "Virtual memory size in bytes.", metric_type::gauge)
        .set({}, static_cast<double>(s.virtual_bytes));
    r.add("process_resident_memory_bytes", "Resident memory size in bytes.", metric_type::gauge)
        .set({}, static_cast<double>(s.resident_bytes));
    r.add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", metric_type::gauge)
        .set({}, s.start_time_seconds);
    return r.render();
}

}  // namespace subsync::daemon
