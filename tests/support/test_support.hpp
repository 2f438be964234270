#pragma once
// Helpers shared by the suites: a temporary directory that cleans up after
// itself, file I/O, and running the real subsyncd binary as a user would.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace subsync::test {

/// A fresh directory under the system temp dir, removed with its contents at destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

/// Whole file as bytes; throws when it cannot be read.
std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& bytes);
/// The lines of `text`, without their "\n"; no empty last line.
std::vector<std::string> split_lines(std::string_view text);

/// One progress step of a sync run with `-v`: a `page fetched account=… source=S pages=D/T` line.
struct progress_step {
    int done = 0;
    int total = 0;
};

/// The progress steps `source` logged in `err`, in order.
std::vector<progress_step> progress_of(const std::string& err, std::string_view source);

/// What a finished subsyncd process left behind.
struct run_result {
    int exit_code = -1;
    std::string out;  ///< stdout
    std::string err;  ///< stderr
};

/// A subsyncd started in the background; finish() waits for it.
struct child {
    int pid = -1;
    std::filesystem::path out_path;
    std::filesystem::path err_path;
    std::shared_ptr<temp_dir> io;
};

/// Starts `argv` (argv[0] a path) with this process's environment plus `env`
/// (systemd's protocol variables removed: they are not for the child), stdin
/// from /dev/null, stdout and stderr into the given files. Returns the pid.
int spawn_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                  const std::filesystem::path& out, const std::filesystem::path& err);

/// Starts `argv` (argv[0] a path) with the given extra environment, stdout and stderr to files.
child spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});

/// Starts the built subsyncd with `args` in the background.
child spawn_subsyncd(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});

/// Waits for the child and collects its exit code (128 + signal when killed) and output.
run_result finish(child& c);

/// The path of the built subsyncd.
std::string subsyncd_path();

/// Runs the built subsyncd with `args`, the given extra environment (other
/// variables are inherited), and waits for it.
run_result run_subsyncd(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});

/// A config file for one account pointing both sources at `base_url`.
struct config_spec {
    std::string base_url;
    std::string ca_file;  ///< empty: system trust store
    std::string token_env = "SUBSYNC_TEST_TOKEN";
    int page_size = 100;
    int concurrency = 8;
    std::string timeout = "10s";
    std::string extra_sync;  ///< more [sync] lines, e.g. "max_attempts = 2\n"
    std::string extra_storage;  ///< more [storage] lines
    std::string auth;        ///< the [account.auth] body; empty: token_env = token_env
    std::string secmaster_url;  ///< empty: base_url
    std::string extra_account;  ///< more [[account]] lines before [account.auth], e.g. "region = \"cn-north-4\"\n"
    std::string extra_tables;   ///< appended after the account, e.g. "[exports]\nkeep_generations = 9\n"
};
std::filesystem::path write_config(const temp_dir& dir, const config_spec& spec);

}  // namespace subsync::test
