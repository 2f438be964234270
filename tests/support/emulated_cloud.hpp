#pragma once
// Starting the emulator the way the end-to-end suites need it: HTTPS on
// loopback, one accepted token, its certificate written for tls.ca_file.

#include "test_support.hpp"

#include <subsync/emulator/server.hpp>

#include <filesystem>
#include <memory>
#include <string>

namespace subsync::test {

/// Starts an emulator that accepts `token` and writes its certificate to `ca_file`.
inline std::unique_ptr<emulator::server> start_emulator(emulator::options opts, emulator::dataset data,
                                                        const std::string& token,
                                                        const std::filesystem::path& ca_file) {
    opts.token = token;
    auto emu = std::make_unique<emulator::server>(std::move(opts), std::move(data));
    emu->start();
    write_file(ca_file, emu->cert_pem());
    return emu;
}

}  // namespace subsync::test
