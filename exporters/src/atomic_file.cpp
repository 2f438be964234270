#include <subsync/exporters/atomic_file.hpp>

#include <fmt/format.h>

#include <openssl/evp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace subsync::exporters {
namespace {

constexpr std::size_t buffer_size = 1u << 20;

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& p) {
    throw std::system_error(errno, std::generic_category(), fmt::format("{} {}", what, p.string()));
}

}  // namespace

struct atomic_file::hasher {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::string hex;
    hasher() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
    ~hasher() { EVP_MD_CTX_free(ctx); }
    hasher(const hasher&) = delete;
    hasher& operator=(const hasher&) = delete;
};

atomic_file::atomic_file(std::filesystem::path target, unsigned mode)
    : target_(std::move(target)), hash_(std::make_unique<hasher>()) {
    auto dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    std::string pattern = (dir / fmt::format(".{}.XXXXXX", target_.filename().string())).string();
    fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd_ < 0) fail("cannot create a temporary file for", target_);
    temp_ = pattern;
    // mkostemp creates 0600; exports are meant to be read by other tools.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    if (::fchmod(fd_, static_cast<mode_t>(mode) & ~mask) != 0) fail("cannot set the mode of", temp_);
    buffer_.reserve(buffer_size);
}

atomic_file::~atomic_file() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(temp_.c_str());
    }
}

void atomic_file::write(std::string_view bytes) {
    EVP_DigestUpdate(hash_->ctx, bytes.data(), bytes.size());
    buffer_.append(bytes);
    written_ += bytes.size();
    if (buffer_.size() >= buffer_size) flush();
}

void atomic_file::flush() {
    std::size_t off = 0;
    while (off < buffer_.size()) {
        const auto n = ::write(fd_, buffer_.data() + off, buffer_.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write", temp_);
        }
        off += static_cast<std::size_t>(n);
    }
    buffer_.clear();
}

std::string atomic_file::sha256_hex() const {
    if (hash_->hex.empty()) {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        EVP_MD_CTX* copy = EVP_MD_CTX_new();
        EVP_MD_CTX_copy_ex(copy, hash_->ctx);
        EVP_DigestFinal_ex(copy, digest, &len);
        EVP_MD_CTX_free(copy);
        static constexpr char digits[] = "0123456789abcdef";
        for (unsigned i = 0; i < len; ++i) {
            hash_->hex += digits[digest[i] >> 4];
            hash_->hex += digits[digest[i] & 0xf];
        }
    }
    return hash_->hex;
}

void atomic_file::commit() {
    flush();
    if (::fsync(fd_) != 0) fail("cannot fsync", temp_);
    if (::close(fd_) != 0) {
        fd_ = -1;
        fail("cannot close", temp_);
    }
    fd_ = -1;
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
        const int saved = errno;
        ::unlink(temp_.c_str());
        errno = saved;
        fail("cannot rename into place", target_);
    }
    auto dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);  // makes the rename itself durable
        ::close(dfd);
    }
}

}  // namespace subsync::exporters
