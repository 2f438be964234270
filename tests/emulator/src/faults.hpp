#pragma once
// Faults a test switches on, and what they do to an answer that would have been 200.

#include "routes.hpp"

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace subsync::emulator::detail {

/// How the server delivers an answer.
enum class delivery {
    respond,         ///< the whole response
    reset_mid_body,  ///< status line, headers and half the body, then RST
    stall,           ///< nothing, until idle timeout or stop
    drip,            ///< status line and headers at once, then the body a few bytes per tick
    drop,            ///< nothing: the connection is closed at once (no TLS close_notify)
    endless,         ///< status line and chunked headers, then a body that never ends
};

/// How fast a dripped body goes out: `bytes` every `tick`.
struct drip_pace {
    std::size_t bytes = 1;
    std::chrono::milliseconds tick{0};
};

struct decision {
    reply answer;
    delivery how = delivery::respond;
    drip_pace pace{};  ///< with delivery::drip
    bool interim_continue = false;  ///< "HTTP/1.1 100 Continue" first
    bool close_after = false;       ///< close the connection abruptly after answering
};

struct fault {
    enum class kind { status, reset, stall, malform, drip };
    kind what = kind::status;
    unsigned status = 500;
    std::optional<unsigned> remaining;  ///< uses left; nullopt: until cleared
    std::string retry_after;           ///< sent as Retry-After with `status` when non-empty
    malformation malformed = malformation::truncated_json;
    drip_pace pace{};
};

/// What `f` makes of `ok`, the 200 answer of a listing (purchases or orders).
decision apply(const fault& f, reply ok, std::string_view request_id);

/// `body` broken as `kind`; `where` says which field wrong_type turns into a string.
std::string malformed_body(std::string_view body, malformation kind, endpoint where);

}  // namespace subsync::emulator::detail
