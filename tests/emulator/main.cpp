// subsync-emulator: the fake Huawei Cloud as a process, for manual runs and scripted tests of
// subsyncd. Prints one line when listening and runs until SIGINT or SIGTERM.

#include "subsync/emulator/server.hpp"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <pthread.h>
#include <string>
#include <system_error>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace emu = subsync::emulator;

// Written beside the target and renamed over it, so a reader never sees a half-written file.
void write_atomically(const fs::path& target, const std::string& content) {
    const fs::path temporary = fs::path(target).concat(".tmp");
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!(out << content) || !out.flush()) {
            throw std::runtime_error(temporary.string() + ": cannot write");
        }
    }
    std::error_code ec;
    fs::rename(temporary, target, ec);
    if (ec) {
        throw std::runtime_error(target.string() + ": cannot rename " + temporary.string() + " over it: " +
                                 ec.message());
    }
}

// NAME:PASSWORD:DOMAIN; the password may hold ':' (the name and the domain cannot).
emu::iam_user parse_user(const std::string& text) {
    const auto first = text.find(':');
    const auto last = text.rfind(':');
    if (first == std::string::npos || first == last || first == 0 || last + 1 == text.size()) {
        throw std::runtime_error("--iam-user: expected NAME:PASSWORD:DOMAIN");
    }
    return {text.substr(0, first), text.substr(first + 1, last - first - 1), text.substr(last + 1)};
}

// AK:SK[:SECURITY_TOKEN]; the security token may hold ':' (the AK and SK cannot).
emu::access_key parse_key(const std::string& text) {
    const auto first = text.find(':');
    if (first == std::string::npos || first == 0) {
        throw std::runtime_error("--access-key: expected AK:SK[:SECURITY_TOKEN]");
    }
    const auto second = text.find(':', first + 1);
    emu::access_key key{text.substr(0, first), text.substr(first + 1, second - first - 1), std::nullopt};
    if (second != std::string::npos) {
        key.security_token = text.substr(second + 1);
    }
    if (key.sk.empty() || (key.security_token && key.security_token->empty())) {
        throw std::runtime_error("--access-key: expected AK:SK[:SECURITY_TOKEN]");
    }
    return key;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"subsync-emulator: a fake Huawei Cloud serving GET /v1.0/apigw/purchases/groups (APIG) and\n"
                 "GET /v1/subscriptions/orders (SecMaster) on 127.0.0.1, for testing subsyncd.\n"
                 "Runs until SIGINT or SIGTERM, then exits 0."};
    app.get_formatter()->column_width(34);

    std::uint16_t port = 0;
    bool plain = false;
    std::string cert_file, key_file, write_cert, dataset_name = "seeds", port_file, token = "emulator-token";
    std::int64_t generate = 0, resources = 10;  // signed, so "-1" is refused rather than wrapped
    std::uint64_t seed = 1;
    unsigned latency_ms = 0;
    std::vector<std::string> users, keys;
    std::int64_t token_ttl = 86400;
    double max_rps = 0;

    app.add_option("--port", port, "TCP port on 127.0.0.1; 0 picks a free one (default 0)");
    auto* plain_opt = app.add_flag("--plain", plain, "serve plain HTTP instead of HTTPS");
    auto* cert_opt = app.add_option("--cert", cert_file, "PEM certificate (chain) to serve; needs --key")
                         ->check(CLI::ExistingFile)
                         ->excludes(plain_opt);
    auto* key_opt = app.add_option("--key", key_file, "PEM private key of --cert")
                        ->check(CLI::ExistingFile)
                        ->excludes(plain_opt);
    cert_opt->needs(key_opt);
    key_opt->needs(cert_opt);
    app.add_option("--write-cert", write_cert,
                   "write the certificate in use (PEM) to this file, for the client's tls.ca_file; without\n"
                   "--cert a fresh self-signed EC P-256 certificate for 127.0.0.1/localhost (1 day) is used")
        ->excludes(plain_opt);
    auto* dataset_opt = app.add_option("--dataset", dataset_name,
                                       "'seeds' (the documented example responses, plus a null-region resource)\n"
                                       "or a JSON file {\"purchases\":[...],\"orders\":{...}} (default seeds)");
    auto* generate_opt = app.add_option("--generate", generate,
                                        "serve N generated purchases instead (awkward but valid values)")
                             ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000'000}))
                             ->excludes(dataset_opt);
    app.add_option("--resources", resources, "with --generate: number of SecMaster resources (default 10)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000'000}))
        ->needs(generate_opt);
    app.add_option("--seed", seed, "with --generate: the seed; same seed, same bytes (default 1)")
        ->needs(generate_opt);
    app.add_option("--latency-ms", latency_ms, "delay added before every response, in ms (default 0)");
    app.add_option("--token", token, "the only X-Auth-Token accepted (default emulator-token)")
        ->envname("SUBSYNC_EMULATOR_TOKEN");
    app.add_option("--iam-user", users,
                   "NAME:PASSWORD:DOMAIN accepted by POST /v3/auth/tokens (password method); repeatable.\n"
                   "Issued tokens are accepted as X-Auth-Token besides --token")
        ->allow_extra_args(false);
    app.add_option("--token-ttl", token_ttl, "lifetime of an issued token in seconds (default 86400, as IAM)")
        ->check(CLI::Range(std::int64_t{0}, std::int64_t{10} * 365 * 86400));
    app.add_option("--access-key", keys,
                   "AK:SK[:SECURITY_TOKEN] accepted in SDK-HMAC-SHA256 signatures; repeatable. With a\n"
                   "security token the key is temporary: requests must send and sign X-Security-Token.\n"
                   "More than 5 consecutive failed signatures lock the AK for 5 minutes")
        ->allow_extra_args(false);
    app.add_option("--max-rps", max_rps,
                   "answer 429 APIG.0308 above N requests/s on the listings (token bucket of N);\n"
                   "0 = no limit (default 0)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--port-file", port_file,
                   "write the bound port to this file once listening (atomically, via rename)");

    CLI11_PARSE(app, argc, argv);

    // Blocked before the server starts its thread, so only sigwait below sees these signals.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    try {
        emu::dataset data =
            generate_opt->count() > 0
                ? emu::dataset::generated(static_cast<std::size_t>(generate), static_cast<std::size_t>(resources), seed)
            : dataset_name == "seeds" ? emu::dataset::seeds()
                                      : emu::dataset::from_file(dataset_name);
        const std::size_t purchases = data.purchases.size();
        const std::size_t groups = data.resource_group_count();

        emu::options opts;
        opts.tls = !plain;
        opts.cert_file = cert_file;
        opts.key_file = key_file;
        opts.token = token;
        opts.latency = std::chrono::milliseconds(latency_ms);
        opts.port = port;
        for (const auto& u : users) {
            opts.users.push_back(parse_user(u));
        }
        opts.token_ttl = std::chrono::seconds(token_ttl);
        for (const auto& k : keys) {
            opts.keys.push_back(parse_key(k));
        }
        opts.max_rps = max_rps;
        emu::server server(opts, std::move(data));
        server.start();

        // The certificate first: a script that waits for the port file may use it at once.
        if (!write_cert.empty()) {
            write_atomically(write_cert, server.cert_pem());
        }
        if (!port_file.empty()) {
            write_atomically(port_file, std::to_string(server.port()) + "\n");
        }
        std::cout << "subsync-emulator listening on " << server.base_url() << " (" << purchases << " purchases, "
                  << groups << " resource groups)" << std::endl;

        int received = 0;
        sigwait(&signals, &received);
        server.stop();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "subsync-emulator: error: " << e.what() << std::endl;
        return 1;
    }
}
