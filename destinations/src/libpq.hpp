#pragma once
// libpq, loaded when a destination first needs it rather than linked: a linked libpq maps
// Kerberos, LDAP, SASL and GnuTLS into every subsyncd, most of which have no `[[destination]]`
// (issue 19: the idle daemon's resident memory). libpq-fe.h still declares every function, and
// the table below is typed from those declarations, so each call type-checks as if linked.

#include "pg_connection.hpp"

#include <libpq-fe.h>

namespace subsync::destinations::detail {

/// The libpq library loaded at run time, and the Debian package that ships it.
inline constexpr const char* libpq_soname = "libpq.so.5";
inline constexpr const char* libpq_package = "libpq5";

// Every libpq function destinations/ calls, in one list: the table's members and what is
// resolved both come from it. A function missing here does not compile at its call site.
#define SUBSYNC_LIBPQ_FUNCTIONS(X)                                                                             \
    X(PQclear) X(PQconnectPoll) X(PQconnectStartParams) X(PQconninfoFree) X(PQconninfoParse) X(PQconsumeInput) \
    X(PQerrorMessage) X(PQfinish) X(PQflush) X(PQfreemem) X(PQgetResult) X(PQgetisnull) X(PQgetlength)        \
    X(PQgetvalue) X(PQisBusy) X(PQnfields) X(PQntuples) X(PQputCopyData) X(PQputCopyEnd)                       \
    X(PQresultErrorMessage) X(PQresultStatus) X(PQsendQuery) X(PQsendQueryParams) X(PQsetnonblocking)          \
    X(PQsocket) X(PQstatus)

/// libpq's functions as pointers, named as libpq names them (so a call reads `pq.PQclear(r)`,
/// greppable against libpq's documentation), each typed `decltype(&::PQname)`.
struct libpq_api {
#define SUBSYNC_LIBPQ_MEMBER(name) decltype(&::name) name = nullptr;
    SUBSYNC_LIBPQ_FUNCTIONS(SUBSYNC_LIBPQ_MEMBER)
#undef SUBSYNC_LIBPQ_MEMBER
};

/// libpq.so.5, loaded (RTLD_NOW | RTLD_LOCAL) on the first call and kept for the process's
/// life. Throws pg_error naming the library and the package to install when it cannot be
/// loaded; the next call tries again (the package may have been installed since).
[[nodiscard]] const libpq_api& libpq();

/// Loads `soname` and resolves every function of the table; throws pg_error as libpq() does.
/// libpq() is this with libpq_soname, once; tests call it with a name that does not exist.
[[nodiscard]] libpq_api load_libpq(const char* soname);

}  // namespace subsync::destinations::detail
