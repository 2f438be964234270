// subsync-bench-parse: the "parse only" scenario of bench/README.md. Reads a corpus of
// purchases pages (as the emulator serves them) and times, per repetition:
//   read      the corpus file read into a buffer (page cache warm): the reference
//   parse     sync::body_parser::groups() on every page, bodies padded for simdjson, into one
//             page kept from call to call as the daemon's pager keeps it (sync/src/fetch.cpp)
//   fresh     the same into a new page each time (groups(body) returning it)
//   unpadded  the same with bodies whose capacity is their size, as Beast's string_body
//             leaves them (simdjson then copies each body into a padded buffer first)
//   dom_only  simdjson's DOM parse alone, no records built: the ceiling for the DOM parser
//   walk      simdjson On-Demand visiting every value the records need (strings unescaped,
//             numbers converted) without building them: the least work any parser must do
// and prints one JSON object on stdout for bench/bench.py.
//
// With a third argument, `parse` or `walk`, it runs only that pass, REPETITIONS times, and prints
// nothing: a run to record with `perf record` without the other passes in its profile.
//
// Corpus format: pages one after the other, each "<length in bytes>\n<body>".

#include <subsync/sync/parse.hpp>

#include <fmt/format.h>
#include <simdjson.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

double seconds_since(steady::time_point t0) {
    return std::chrono::duration<double>(steady::now() - t0).count();
}

// Reads the whole file with read(2) into `out`, resized to the file's size. "File read time" is
// this into a buffer that already exists (the second and later calls): the kernel's copy from
// the page cache, without the first touch of fresh memory.
void read_file(const char* path, std::string& out) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw std::runtime_error(fmt::format("cannot stat {}", path));
    out.resize(static_cast<std::size_t>(st.st_size));
    std::size_t off = 0;
    while (off < out.size()) {
        const auto n = ::read(fd, out.data() + off, out.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error(fmt::format("cannot read {}", path));
        off += static_cast<std::size_t>(n);
    }
    ::close(fd);
}

std::vector<std::string_view> split_pages(std::string_view corpus) {
    std::vector<std::string_view> pages;
    while (!corpus.empty()) {
        const auto nl = corpus.find('\n');
        if (nl == std::string_view::npos) throw std::runtime_error("corpus: missing page length");
        const auto len = std::strtoull(std::string(corpus.substr(0, nl)).c_str(), nullptr, 10);
        corpus.remove_prefix(nl + 1);
        if (len > corpus.size()) throw std::runtime_error("corpus: truncated page");
        pages.push_back(corpus.substr(0, len));
        corpus.remove_prefix(len);
    }
    return pages;
}

struct sample {
    double read = 0, parse = 0, fresh = 0, unpadded = 0, dom_only = 0, walk = 0;
};

// Visits one value the way a record builder must: strings unescaped, integers converted, arrays
// and objects descended. Returns a checksum so that nothing is optimised away.
std::size_t visit(simdjson::ondemand::value v) {
    using simdjson::ondemand::json_type;
    json_type t;
    if (v.type().get(t)) throw std::runtime_error("walk: bad value");
    switch (t) {
        case json_type::string: return v.get_string().value().size();
        case json_type::number: {
            std::int64_t i = 0;
            return v.get_int64().get(i) ? 1u : static_cast<std::size_t>(i & 1);
        }
        case json_type::array: {
            std::size_t n = 0;
            for (auto e : v.get_array()) n += visit(e.value());
            return n;
        }
        case json_type::object: {
            std::size_t n = 0;
            for (auto f : v.get_object()) n += f.unescaped_key().value().size() + visit(f.value());
            return n;
        }
        case json_type::boolean: return v.get_bool().value() ? 1u : 0u;
        case json_type::null: return v.is_null().value() ? 1u : 0u;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: subsync-bench-parse CORPUS [REPETITIONS [parse|walk]]\n");
        return 2;
    }
    const char* path = argv[1];
    const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 3;
    const std::string_view only = argc > 3 ? argv[3] : "";
    if (!only.empty() && only != "parse" && only != "walk") {
        std::fprintf(stderr, "subsync-bench-parse: the pass to profile is `parse` or `walk`, not `%s`\n", argv[3]);
        return 2;
    }
    try {
        std::string corpus;
        read_file(path, corpus);  // also warms the page cache
        std::string again;
        read_file(path, again);  // allocates and touches the buffer the timed reads reuse
        const auto views = split_pages(corpus);
        std::vector<std::string> padded, exact;
        padded.reserve(views.size());
        exact.reserve(views.size());
        std::size_t body_bytes = 0;
        for (auto v : views) {
            std::string p;
            p.reserve(v.size() + simdjson::SIMDJSON_PADDING);
            p.assign(v);
            padded.push_back(std::move(p));
            exact.emplace_back(v);
            body_bytes += v.size();
        }

        subsync::sync::body_parser parser;
        simdjson::dom::parser dom;
        simdjson::ondemand::parser ondemand;
        subsync::sync::groups_page kept;
        std::size_t checksum = 0;
        std::size_t items = 0;
        // One untimed pass: sizes the parsers' buffers and checks every page parses.
        for (const auto& body : padded) {
            auto page = parser.groups(body);
            if (!page) throw std::runtime_error("corpus page does not parse: " + page.error().message);
            items += page->purchases.size();
        }

        if (!only.empty()) {  // one pass alone, for a profiler
            for (int r = 0; r < reps; ++r) {
                for (const auto& body : padded) {
                    if (only == "parse") {
                        if (!parser.groups(body, kept)) throw std::runtime_error("a page stopped parsing");
                        checksum += kept.purchases.size();
                    } else {
                        auto doc = ondemand.iterate(body.data(), body.size(), body.capacity());
                        for (auto field : doc.get_object()) checksum += visit(field.value());
                    }
                }
            }
            return checksum == 0 ? 1 : 0;
        }

        std::vector<sample> samples;
        for (int r = 0; r < reps; ++r) {
            sample s;
            auto t0 = steady::now();
            read_file(path, again);
            s.read = seconds_since(t0);
            if (again.size() != corpus.size()) throw std::runtime_error("corpus changed while running");

            t0 = steady::now();
            std::size_t n = 0;
            for (const auto& body : padded) {
                if (!parser.groups(body, kept)) throw std::runtime_error("a page stopped parsing");
                n += kept.purchases.size();
            }
            s.parse = seconds_since(t0);

            t0 = steady::now();
            std::size_t fresh = 0;
            for (const auto& body : padded) fresh += parser.groups(body)->purchases.size();
            s.fresh = seconds_since(t0);
            if (fresh != items) throw std::runtime_error("item count changed between passes");

            t0 = steady::now();
            for (const auto& body : exact) {
                if (!parser.groups(body, kept)) throw std::runtime_error("a page stopped parsing");
                n += kept.purchases.size();
            }
            s.unpadded = seconds_since(t0);

            t0 = steady::now();
            for (const auto& body : padded) {
                simdjson::dom::element doc;
                if (dom.parse(body).get(doc)) throw std::runtime_error("simdjson rejected a page");
                n += doc.is_object() ? 1u : 0u;
            }
            s.dom_only = seconds_since(t0);

            t0 = steady::now();
            for (const auto& body : padded) {
                auto doc = ondemand.iterate(body.data(), body.size(), body.capacity());
                for (auto field : doc.get_object()) checksum += visit(field.value());
            }
            s.walk = seconds_since(t0);
            if (n != 2 * items + padded.size()) throw std::runtime_error("item count changed between passes");
            samples.push_back(s);
        }

        std::string out = fmt::format(
            "{{\"file_bytes\":{},\"body_bytes\":{},\"pages\":{},\"items\":{},\"simdjson_implementation\":\"{}\","
            "\"walk_checksum\":{},\"samples\":[",
            corpus.size(), body_bytes, padded.size(), items, simdjson::get_active_implementation()->name(), checksum);
        for (std::size_t i = 0; i < samples.size(); ++i) {
            const auto& s = samples[i];
            out += fmt::format(
                "{}{{\"read_s\":{:.6f},\"parse_s\":{:.6f},\"fresh_s\":{:.6f},\"unpadded_s\":{:.6f},\"dom_only_s\":{:.6f},"
                "\"walk_s\":{:.6f}}}",
                i == 0 ? "" : ",", s.read, s.parse, s.fresh, s.unpadded, s.dom_only, s.walk);
        }
        out += "]}\n";
        std::fwrite(out.data(), 1, out.size(), stdout);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "subsync-bench-parse: %s\n", e.what());
        return 1;
    }
}
