// safetensors reader (mmap + validation) and writer.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace zerorl::model {
namespace {

using nlohmann::json;

size_t DTypeSize(DType d) { return d == DType::kF32 ? 4 : 2; }

bool ParseDType(const std::string& s, DType* d) {
  if (s == "F32") *d = DType::kF32;
  else if (s == "BF16") *d = DType::kBF16;
  else if (s == "F16") *d = DType::kF16;
  else return false;
  return true;
}

std::string ShapeStr(const std::vector<int64_t>& s) { return absl::StrCat("[", absl::StrJoin(s, ","), "]"); }

bool IsDir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool Exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

}  // namespace

const char* DTypeName(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
  }
  return "?";
}

float Bf16ToF32(uint16_t v) {
  uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t F32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

float F16ToF32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; man <<= 1; } while (!(man & 0x400));
      u = sign | ((127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t F32ToF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    man |= 0x800000;
    uint32_t shift = 14 - exp;
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (man >> 13);
  uint32_t rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // may carry into exponent: correct
  return static_cast<uint16_t>(h);
}

SafetensorsReader::~SafetensorsReader() {
  for (auto& m : maps_)
    if (m.addr) munmap(m.addr, m.size);
}

absl::StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::Open(const std::string& path) {
  std::unique_ptr<SafetensorsReader> r(new SafetensorsReader());
  if (!IsDir(path)) {
    ZRL_RETURN_IF_ERROR(r->MapFile(path));
    return r;
  }
  const std::string index = path + "/model.safetensors.index.json";
  const std::string single = path + "/model.safetensors";
  if (Exists(index)) {
    std::ifstream in(index);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    if (auto s = CheckJsonDepth(text); !s.ok()) return absl::InvalidArgumentError(absl::StrCat(index, ": ", s.message()));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      return absl::InvalidArgumentError(absl::StrCat(index, ": not a safetensors index (needs a weight_map object)"));
    std::set<std::string> files;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) return absl::InvalidArgumentError(absl::StrCat(index, ": weight_map[", name, "] is not a file name"));
      files.insert(file.get<std::string>());
    }
    for (const auto& f : files) ZRL_RETURN_IF_ERROR(r->MapFile(path + "/" + f));
    for (const auto& [name, file] : j["weight_map"].items()) {
      auto it = r->entries_.find(name);
      if (it == r->entries_.end() || it->second.file != path + "/" + file.get<std::string>())
        return absl::InvalidArgumentError(
            absl::StrCat(index, ": tensor ", name, " is not in ", file.get<std::string>()));
    }
    return r;
  }
  if (Exists(single)) {
    ZRL_RETURN_IF_ERROR(r->MapFile(single));
    return r;
  }
  return absl::NotFoundError(absl::StrCat(path, ": no model.safetensors or model.safetensors.index.json"));
}

absl::Status SafetensorsReader::MapFile(const std::string& file) {
  int fd = open(file.c_str(), O_RDONLY);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", file, ": ", std::strerror(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("cannot stat ", file));
  }
  size_t size = static_cast<size_t>(st.st_size);
  auto err = [&](const std::string& what) { return absl::InvalidArgumentError(absl::StrCat(file, ": ", what)); };
  if (size < 8) {
    close(fd);
    return err("truncated (shorter than the 8-byte header length)");
  }
  void* addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (addr == MAP_FAILED) return absl::InternalError(absl::StrCat("cannot mmap ", file));
  maps_.push_back({file, addr, size});
  const uint8_t* base = static_cast<const uint8_t*>(addr);
  uint64_t hlen;
  std::memcpy(&hlen, base, 8);
  if (hlen > size - 8) return err(absl::StrCat("truncated or bad header (header length ", hlen, " > file size ", size, ")"));
  const absl::string_view header(reinterpret_cast<const char*>(base + 8), hlen);
  if (auto s = CheckJsonDepth(header); !s.ok()) return err(absl::StrCat("bad header: ", s.message()));
  json h = json::parse(header.begin(), header.end(), nullptr, false);
  if (h.is_discarded() || !h.is_object()) return err("bad header (not a JSON object)");
  const size_t data0 = 8 + hlen, data_size = size - data0;
  for (const auto& [name, v] : h.items()) {
    if (name == "__metadata__") continue;
    auto terr = [&](const std::string& what) { return err(absl::StrCat("tensor ", name, ": ", what)); };
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      return terr("bad header entry (needs dtype, shape, data_offsets)");
    SafetensorsEntry e;
    e.name = name;
    e.file = file;
    if (!v["dtype"].is_string() || !ParseDType(v["dtype"].get<std::string>(), &e.dtype))
      return terr(absl::StrCat("unsupported dtype ", v["dtype"].dump(), " (F32, BF16 or F16)"));
    if (!v["shape"].is_array()) return terr("shape is not a list");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) return terr("shape has a bad dimension");
      e.shape.push_back(d.get<int64_t>());
      numel *= static_cast<uint64_t>(d.get<int64_t>());
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      return terr("data_offsets must be [begin, end]");
    uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en) return terr("data_offsets begin > end");
    if (en > data_size)
      return terr(absl::StrCat("truncated: data ends at byte ", en, " but the file holds ", data_size, " data bytes"));
    if (en - b != numel * DTypeSize(e.dtype))
      return terr(absl::StrCat("byte size ", en - b, " does not match ", DTypeName(e.dtype), " ", ShapeStr(e.shape)));
    e.data = base + data0 + b;
    e.nbytes = en - b;
    if (entries_.count(name)) return terr("appears in two files");
    entries_[name] = std::move(e);
  }
  return absl::OkStatus();
}

std::vector<std::string> SafetensorsReader::Names() const {
  std::vector<std::string> out;
  for (const auto& [n, e] : entries_) out.push_back(n);
  return out;
}

absl::StatusOr<const SafetensorsEntry*> SafetensorsReader::Find(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string files;
    for (const auto& m : maps_) files = files.empty() ? m.file : absl::StrCat(files, ", ", m.file);
    return absl::NotFoundError(absl::StrCat("tensor ", name, " is missing from ", files));
  }
  return &it->second;
}

absl::Status SafetensorsReader::ReadF32(const std::string& name, const std::vector<int64_t>& shape, float* out) const {
  ZRL_ASSIGN_OR_RETURN(const SafetensorsEntry* e, Find(name));
  if (e->shape != shape)
    return absl::InvalidArgumentError(absl::StrCat(e->file, ": tensor ", name, " has shape ", ShapeStr(e->shape),
                                                   ", expected ", ShapeStr(shape)));
  size_t n = e->nbytes / DTypeSize(e->dtype);
  if (e->dtype == DType::kF32) {
    std::memcpy(out, e->data, n * 4);
  } else {
    const uint8_t* p = e->data;
    for (size_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = e->dtype == DType::kBF16 ? Bf16ToF32(v) : F16ToF32(v);
    }
  }
  return absl::OkStatus();
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors, DType dtype,
                              const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  std::vector<uint64_t> numels;
  for (const auto& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    numels.push_back(numel);
    uint64_t bytes = numel * DTypeSize(dtype);
    h[t.name] = {{"dtype", DTypeName(dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8) hs.push_back(' ');
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  uint64_t hlen = hs.size();
  bool ok = std::fwrite(&hlen, 8, 1, f) == 1 && std::fwrite(hs.data(), 1, hs.size(), f) == hs.size();
  std::vector<uint16_t> buf;
  for (size_t i = 0; ok && i < tensors.size(); ++i) {
    const float* d = tensors[i].data;
    if (dtype == DType::kF32) {
      ok = std::fwrite(d, 4, numels[i], f) == numels[i];
    } else {
      buf.resize(numels[i]);
      for (uint64_t k = 0; k < numels[i]; ++k) buf[k] = dtype == DType::kBF16 ? F32ToBf16(d[k]) : F32ToF16(d[k]);
      ok = std::fwrite(buf.data(), 2, numels[i], f) == numels[i];
    }
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("writing ", path, " failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace zerorl::model
