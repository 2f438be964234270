#pragma once
// A libpq connection driven through its asynchronous API (PQconnectStart, PQsendQueryParams,
// PQputCopyData) with poll(2) on PQsocket, so every step has a client-side deadline: a
// PostgreSQL that stops answering (a partition, a stopped VM) costs at most the deadline,
// never a hung thread. Used from the replication thread only.

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace subsync::destinations::detail {

using clock = std::chrono::steady_clock;

/// A failure talking to PostgreSQL; the message is redacted (config::redact) and names the step.
class pg_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One statement's rows, as text (NULL is nullopt).
struct pg_rows {
    std::vector<std::vector<std::optional<std::string>>> rows;
};

/// Connection settings beyond the DSN: libpq keywords, applied after it (so they win).
struct pg_settings {
    std::vector<std::pair<std::string, std::string>> keywords;
};

class pg_connection {
public:
    /// Connects within `timeout`; throws pg_error. Every wait also ends (with pg_error) soon
    /// after `*cancel` turns true, so a stopping daemon never waits out a deadline.
    pg_connection(const std::string& dsn, const pg_settings& extra, std::chrono::milliseconds timeout,
                  const std::atomic<bool>* cancel = nullptr);
    ~pg_connection();
    pg_connection(const pg_connection&) = delete;
    pg_connection& operator=(const pg_connection&) = delete;

    /// Runs `sql` (one statement when params are given; several otherwise) within `timeout`;
    /// returns the last statement's rows. Throws pg_error on failure or timeout.
    pg_rows exec(std::string_view sql, const std::vector<std::optional<std::string>>& params,
                 std::chrono::milliseconds timeout);
    pg_rows exec(std::string_view sql, std::chrono::milliseconds timeout) { return exec(sql, {}, timeout); }

    /// `COPY ... FROM STDIN` in COPY text format, streamed: begin, put chunks, end; the whole
    /// COPY shares `deadline`. Throws pg_error.
    void copy_begin(std::string_view copy_sql, clock::time_point deadline);
    void copy_put(std::string_view data, clock::time_point deadline);
    void copy_end(clock::time_point deadline);

private:
    void open(const std::string& dsn, const pg_settings& extra, std::chrono::milliseconds timeout);
    enum class wait_for { read, write, both };
    void wait(wait_for what, clock::time_point deadline, std::string_view step);
    void flush(clock::time_point deadline, std::string_view step);
    pg_rows collect(clock::time_point deadline, std::string_view step, bool expect_copy);
    [[noreturn]] void fail(std::string_view step, std::string_view why);

    pg_conn* conn_ = nullptr;
    const std::atomic<bool>* cancel_ = nullptr;
};

/// `"name"`: a quoted PostgreSQL identifier (names come validated from the config).
[[nodiscard]] std::string quote_ident(std::string_view name);

/// Appends `s` escaped for COPY's text format (backslash, tab, newline, CR).
void append_copy_text(std::string& out, std::string_view s);

}  // namespace subsync::destinations::detail
