#include "test_support.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace subsync::test {

temp_dir::temp_dir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / fmt::format("subsync-test-{}-{:x}", ::getpid(), rd());
    std::filesystem::create_directories(path_);
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<progress_step> progress_of(const std::string& err, std::string_view source) {
    const std::regex line(fmt::format(R"(page fetched account=\S+ source={} pages=(\d+)/(\d+))", source));
    std::vector<progress_step> out;
    for (std::sregex_iterator m(err.begin(), err.end(), line), end; m != end; ++m)
        out.push_back({std::stoi((*m)[1]), std::stoi((*m)[2])});
    return out;
}

std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        out.emplace_back(text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

void write_file(const std::filesystem::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
    if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::string subsyncd_path() { return SUBSYNCD_PATH; }

int spawn_process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                  const std::filesystem::path& out, const std::filesystem::path& err) {
    std::vector<std::string> argv_s = args;
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);

    std::map<std::string, std::string> merged;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string kv(*e);
        const auto eq = kv.find('=');
        if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    // The test may itself run under systemd: its protocol variables are not for this child.
    for (const char* k : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS",
                          "LISTEN_PID", "CREDENTIALS_DIRECTORY"})
        merged.erase(k);
    for (const auto& [k, v] : env) merged[k] = v;
    std::vector<std::string> env_s;
    for (const auto& [k, v] : merged) env_s.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error(fmt::format("cannot start {}: error {}", argv[0], rc));
    return pid;
}

child spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    child c;
    c.io = std::make_shared<temp_dir>();
    c.out_path = *c.io / "stdout";
    c.err_path = *c.io / "stderr";
    c.pid = spawn_process(args, env, c.out_path, c.err_path);
    return c;
}

child spawn_subsyncd(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    std::vector<std::string> argv{SUBSYNCD_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return spawn(argv, env);
}

run_result finish(child& c) {
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0) {
    }
    run_result r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(c.out_path);
    r.err = read_file(c.err_path);
    return r;
}

run_result run_subsyncd(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    auto c = spawn_subsyncd(args, env);
    return finish(c);
}

std::filesystem::path write_config(const temp_dir& dir, const config_spec& spec) {
    const auto file = dir / "subsync.toml";
    // Tests retry fast unless they say otherwise.
    std::string sync_lines = spec.extra_sync;
    if (sync_lines.find("backoff_base") == std::string::npos) sync_lines += "backoff_base = \"10ms\"\n";
    if (sync_lines.find("backoff_max") == std::string::npos) sync_lines += "backoff_max = \"100ms\"\n";
    std::string text = fmt::format(R"([storage]
database   = "{}"
export_dir = "{}"
{}
[sync]
page_size   = {}
concurrency = {}
timeout     = "{}"
{}
[tls]
ca_file = "{}"

[[account]]
name               = "prod"
apig_endpoint      = "{}"
secmaster_endpoint = "{}"
language           = "en-us"
{}[account.auth]
{}
)",
                                   (dir / "snapshot.db").string(), (dir / "exports").string(), spec.extra_storage, spec.page_size,
                                   spec.concurrency, spec.timeout, sync_lines, spec.ca_file, spec.base_url,
                                   spec.secmaster_url.empty() ? spec.base_url : spec.secmaster_url, spec.extra_account,
                                   spec.auth.empty() ? "token_env = \"" + spec.token_env + "\"" : spec.auth);
    text += spec.extra_tables;
    write_file(file, text);
    return file;
}

}  // namespace subsync::test
