#pragma once
// IAM `POST /v3/auth/tokens`, password method: parses the request body, checks the user, has the
// gateway issue a token and answers 201 with it in `X-Subject-Token`. Errors use IAM's nested
// body {"error":{"code":…,"message":…,"title":…}}, not the gateway's.

#include "gateway.hpp"
#include "routes.hpp"

#include <chrono>
#include <span>
#include <string_view>

namespace subsync::emulator::detail {

/// The answer to a request on /v3/auth/tokens: 405 unless POST, 400 for a body that is not a
/// password-method token request, 401 for an unknown user, wrong password or a domain scope of
/// another account, else 201.
reply issue_token(const incoming& request, std::span<const iam_user> users, std::chrono::seconds ttl,
                  gateway& tokens, wall_time wall, steady_time now);

/// IAM's error body {"error":{"code":status,"message":…,"title":…}}.
reply iam_error(unsigned status, std::string_view title, std::string_view message);

/// GET /v3/projects[?name=…]: the projects named so (all without `name`), in IAM's shape; 401 when
/// not authenticated.
reply list_projects(const incoming& request, bool authenticated, std::span<const project> projects);

/// echo_secrets_iam(): 401 whose message copies the request body.
reply echo_iam_request(const incoming& request);

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, IAM's timestamp format (microseconds, UTC).
std::string iam_time(wall_time t);

}  // namespace subsync::emulator::detail
