#include "libpq.hpp"

#include <fmt/format.h>

#include <dlfcn.h>

namespace subsync::destinations::detail {
namespace {

[[noreturn]] void unavailable(const char* soname, std::string_view why) {
    throw pg_error(fmt::format("{} cannot be loaded ({}): PostgreSQL destinations need the {} package "
                               "(apt install {})",
                               soname, why, libpq_package, libpq_package));
}

template <typename F>
F resolve(void* library, const char* soname, const char* name) {
    ::dlerror();
    void* symbol = ::dlsym(library, name);
    if (symbol == nullptr) {
        const char* why = ::dlerror();
        unavailable(soname, why != nullptr ? why : fmt::format("{} not found", name));
    }
    // POSIX guarantees that dlsym's void* converts to the function's pointer type (dlsym(3)).
    return reinterpret_cast<F>(symbol);  // NOLINT: the dlsym contract
}

}  // namespace

libpq_api load_libpq(const char* soname) {
    // Never closed: the table outlives every connection, and libpq registers nothing to undo.
    void* library = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        const char* why = ::dlerror();
        unavailable(soname, why != nullptr ? why : "dlopen failed");
    }
    libpq_api api;
#define SUBSYNC_LIBPQ_RESOLVE(name) api.name = resolve<decltype(&::name)>(library, soname, #name);
    SUBSYNC_LIBPQ_FUNCTIONS(SUBSYNC_LIBPQ_RESOLVE)
#undef SUBSYNC_LIBPQ_RESOLVE
    return api;
}

const libpq_api& libpq() {
    // A throwing initialiser leaves the static uninitialised: the next call loads again.
    static const libpq_api api = load_libpq(libpq_soname);
    return api;
}

}  // namespace subsync::destinations::detail
