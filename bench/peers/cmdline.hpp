/* SPDX-License-Identifier: MIT */
/*
 * cmdline.hpp - the command line of a C++ peer, quoted for the "cmd"
 * field of its JSON line (shared by the oneTBB peers).
 */
#ifndef BENCH_PEERS_CMDLINE_HPP
#define BENCH_PEERS_CMDLINE_HPP

#include <string>

static inline std::string cmdline(int argc, char **argv)
{
	std::string s;

	for (int i = 0; i < argc; i++) {
		if (i)
			s += ' ';
		for (const char *p = argv[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				s += '\\';
			s += *p;
		}
	}
	return s;
}

#endif
