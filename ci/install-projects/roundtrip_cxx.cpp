// roundtrip_cxx.cpp — a C++ user of an installed libshmfile: <shmfile.hpp> from the
// same include directory as <shmfile.h>, built by ci/install-check.sh with pkg-config
// and with CMake (shmfile::shmfile). Creates the stream argv[1], writes a line
// through std::ostream, reads it back through a guest's std::istream, and checks the
// errors of a guest open of a missing name; the owner's destructor removes the name.
#include <shmfile.hpp>

#include <cstdio>
#include <iostream>
#include <string>

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::printf("usage: roundtrip_cxx NAME\n");
        return 2;
    }
    try {
        shmfile::stream owner = shmfile::stream::create(argv[1], 0600);
        shmfile::streambuf out_buf(owner);
        std::ostream out(&out_buf);
        out << "from c++ " << SHMFILE_VERSION_STRING << std::endl;
        shmfile::iostream in(shmfile::stream::guest(argv[1], FSHM_RDONLY));
        std::string line;
        if (!std::getline(in, line) || line != std::string("from c++ ") + SHMFILE_VERSION_STRING) {
            std::printf("roundtrip_cxx: read back '%s'\n", line.c_str());
            return 1;
        }
        std::error_code ec;
        shmfile::stream::guest(std::string(argv[1]) + "-missing", 0, ec);
        if (ec != std::errc::no_such_file_or_directory) {
            std::printf("roundtrip_cxx: missing name gave '%s'\n", ec.message().c_str());
            return 1;
        }
    } catch (const std::system_error &e) {
        std::printf("roundtrip_cxx: %s\n", e.what());
        fshm_force_destroy(argv[1]);
        return 1;
    }
    std::printf("roundtrip_cxx: ok\n");
    return 0;
}
