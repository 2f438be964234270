#include "pg_connection.hpp"

#include "libpq.hpp"

#include <subsync/config/secret.hpp>

#include <fmt/format.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace subsync::destinations::detail {
namespace {

/// libpq's messages span lines ("...failed: ...\n\tIs the server running...?\n"): one log line.
std::string one_line(std::string_view message) {
    std::string s;
    for (char c : message) {
        if (c == '\n' || c == '\t' || c == '\r') {
            if (!s.empty() && s.back() != ' ') s += ' ';
        } else {
            s += c;
        }
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

/// The DSN is a secret as a whole (config::secret); its password is one on its own too, in
/// case a message quotes it alone.
void remember_password(const std::string& dsn) {
    char* error = nullptr;
    PQconninfoOption* options = libpq().PQconninfoParse(dsn.c_str(), &error);
    if (error != nullptr) libpq().PQfreemem(error);
    if (options == nullptr) return;
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o)
        if (o->val != nullptr && std::string_view(o->keyword) == "password") config::remember_secret(o->val);
    libpq().PQconninfoFree(options);
}

struct result_deleter {
    void operator()(PGresult* r) const { libpq().PQclear(r); }
};
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

}  // namespace

pg_connection::pg_connection(const std::string& dsn, const pg_settings& extra, std::chrono::milliseconds timeout,
                             const std::atomic<bool>* cancel)
    : cancel_(cancel) {
    try {
        open(dsn, extra, timeout);
    } catch (...) {
        // The destructor does not run for a constructor that throws: a failed connect (a
        // destination that is down, retried every retry_interval) must not leak its socket.
        if (conn_ != nullptr) libpq().PQfinish(conn_);
        conn_ = nullptr;
        throw;
    }
}

void pg_connection::open(const std::string& dsn, const pg_settings& extra, std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    remember_password(dsn);
    // expand_dbname: the DSN (a URI or key=value string) goes in as "dbname" and is expanded;
    // the keywords after it override what it says.
    std::vector<const char*> keys{"dbname"};
    std::vector<const char*> values{dsn.c_str()};
    for (const auto& [k, v] : extra.keywords) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = libpq().PQconnectStartParams(keys.data(), values.data(), 1);
    if (conn_ == nullptr) throw pg_error("connect: out of memory");
    if (libpq().PQstatus(conn_) == CONNECTION_BAD) fail("connect", libpq().PQerrorMessage(conn_));
    // PQconnectPoll's protocol: wait for what it asks, call it again, until OK or FAILED.
    PostgresPollingStatusType s = PGRES_POLLING_WRITING;
    while (true) {
        if (s == PGRES_POLLING_OK) break;
        if (s == PGRES_POLLING_FAILED) fail("connect", libpq().PQerrorMessage(conn_));
        wait(s == PGRES_POLLING_READING ? wait_for::read : wait_for::write, deadline, "connect");
        s = libpq().PQconnectPoll(conn_);
    }
    if (libpq().PQsetnonblocking(conn_, 1) != 0) fail("connect", libpq().PQerrorMessage(conn_));
}

pg_connection::~pg_connection() {
    if (conn_ != nullptr) libpq().PQfinish(conn_);
}

void pg_connection::fail(std::string_view step, std::string_view why) {
    std::string message = fmt::format("{}: {}", step, one_line(why));
    config::redact(message);
    throw pg_error(message);
}

void pg_connection::wait(wait_for what, clock::time_point deadline, std::string_view step) {
    const int fd = libpq().PQsocket(conn_);
    if (fd < 0) fail(step, libpq().PQerrorMessage(conn_));
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) fail(step, "timed out (no answer from PostgreSQL within the deadline)");
        if (cancel_ != nullptr && cancel_->load()) fail(step, "cancelled: subsyncd is stopping");
        pollfd p{fd, static_cast<short>(what == wait_for::read ? POLLIN : what == wait_for::write ? POLLOUT
                                                                                                   : POLLIN | POLLOUT),
                 0};
        const int n = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 100)));
        if (n > 0) return;
        if (n < 0 && errno != EINTR) fail(step, std::strerror(errno));
    }
}

void pg_connection::flush(clock::time_point deadline, std::string_view step) {
    // Non-blocking mode: PQflush returns 1 while data is still queued.
    while (true) {
        const int f = libpq().PQflush(conn_);
        if (f == 0) return;
        if (f < 0) fail(step, libpq().PQerrorMessage(conn_));
        wait(wait_for::both, deadline, step);
        if (libpq().PQconsumeInput(conn_) == 0) fail(step, libpq().PQerrorMessage(conn_));
    }
}

pg_rows pg_connection::collect(clock::time_point deadline, std::string_view step, bool expect_copy) {
    pg_rows out;
    std::string error;
    while (true) {
        while (libpq().PQisBusy(conn_) != 0) {
            wait(wait_for::read, deadline, step);
            if (libpq().PQconsumeInput(conn_) == 0) fail(step, libpq().PQerrorMessage(conn_));
        }
        result_ptr r(libpq().PQgetResult(conn_));
        if (!r) break;
        const auto status = libpq().PQresultStatus(r.get());
        if (status == PGRES_COPY_IN && expect_copy) return out;
        if (status == PGRES_TUPLES_OK) {
            out.rows.clear();
            const int rows = libpq().PQntuples(r.get());
            const int cols = libpq().PQnfields(r.get());
            for (int i = 0; i < rows; ++i) {
                auto& row = out.rows.emplace_back();
                for (int j = 0; j < cols; ++j) {
                    if (libpq().PQgetisnull(r.get(), i, j)) row.emplace_back(std::nullopt);
                    else row.emplace_back(std::string(libpq().PQgetvalue(r.get(), i, j),
                                                      static_cast<std::size_t>(libpq().PQgetlength(r.get(), i, j))));
                }
            }
        } else if (status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY && error.empty()) {
            error = libpq().PQresultErrorMessage(r.get());
        }
    }
    if (!error.empty()) fail(step, error);
    if (expect_copy) fail(step, "the server did not start COPY");
    return out;
}

pg_rows pg_connection::exec(std::string_view sql, const std::vector<std::optional<std::string>>& params,
                            std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    const std::string text(sql);
    int sent = 0;
    if (params.empty()) {
        sent = libpq().PQsendQuery(conn_, text.c_str());
    } else {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
        sent = libpq().PQsendQueryParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr,
                                         values.data(), nullptr, nullptr, 0);
    }
    if (sent == 0) fail("send", libpq().PQerrorMessage(conn_));
    flush(deadline, "send");
    return collect(deadline, "query", false);
}

void pg_connection::copy_begin(std::string_view copy_sql, clock::time_point deadline) {
    const std::string text(copy_sql);
    if (libpq().PQsendQuery(conn_, text.c_str()) == 0) fail("copy", libpq().PQerrorMessage(conn_));
    flush(deadline, "copy");
    collect(deadline, "copy", true);
}

void pg_connection::copy_put(std::string_view data, clock::time_point deadline) {
    constexpr std::size_t chunk = 256 << 10;
    for (std::size_t at = 0; at < data.size();) {
        const auto n = std::min(chunk, data.size() - at);
        const int r = libpq().PQputCopyData(conn_, data.data() + at, static_cast<int>(n));
        if (r < 0) fail("copy", libpq().PQerrorMessage(conn_));
        if (r == 0) {  // the send buffer is full: wait until the socket drains
            wait(wait_for::write, deadline, "copy");
            flush(deadline, "copy");
            continue;
        }
        at += n;
        flush(deadline, "copy");
    }
}

void pg_connection::copy_end(clock::time_point deadline) {
    while (true) {
        const int r = libpq().PQputCopyEnd(conn_, nullptr);
        if (r < 0) fail("copy", libpq().PQerrorMessage(conn_));
        if (r == 1) break;
        wait(wait_for::write, deadline, "copy");
    }
    flush(deadline, "copy");
    collect(deadline, "copy", false);
}

std::string quote_ident(std::string_view name) {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
    return out;
}

void append_copy_text(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\t': out += "\\t"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out += c;
        }
    }
}

}  // namespace subsync::destinations::detail
